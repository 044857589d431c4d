import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirementsFromText } from './python-requirements';
import { parseSubmitArgv, UsageError } from './submit-args';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

describe('requirementsFromText', () => {
  it.each<[string, string, string[]]>([
    ['one pin a line', 'scikit-learn==1.5.2\nnumpy==2.1.0\n', ['scikit-learn==1.5.2', 'numpy==2.1.0']],
    ['comments and blank lines dropped', '# pinned by CI\n\nnumpy==2.1.0  # the array library\n', ['numpy==2.1.0']],
    // pip-compile's layout: a requirement, then "# via" comments under it
    [
      'a lock file without hashes',
      'joblib==1.4.2\n    # via scikit-learn\nscipy==1.14.1\n    # via\n    #   scikit-learn\n',
      ['joblib==1.4.2', 'scipy==1.14.1'],
    ],
    ['continuations joined', 'requests[socks]>=2.31,\\\n<3\n', ['requests[socks]>=2.31, <3']],
    ['CRLF line ends', 'numpy==2.1.0\r\npandas==2.2.3\r\n', ['numpy==2.1.0', 'pandas==2.2.3']],
    ['a marker', 'tomli==2.0.1 ; python_version < "3.11"\n', ['tomli==2.0.1 ; python_version < "3.11"']],
    // pip-compile --generate-hashes: each pin with its hashes on continuation lines, "# via" comments after
    [
      'a lock file with hashes',
      `joblib==1.4.2 \\\n    --hash=sha256:${A} \\\n    --hash=sha256:${B}\n    # via scikit-learn\ntomli==2.0.1 ; python_version < "3.11" \\\n    --hash=sha256:${A}\n`,
      [`joblib==1.4.2      --hash=sha256:${A}      --hash=sha256:${B}`, `tomli==2.0.1 ; python_version < "3.11"      --hash=sha256:${A}`],
    ],
    ['a hash written "--hash sha256:…" (pip takes both)', `numpy==2.1.0 --hash sha256:${A}\n`, [`numpy==2.1.0 --hash=sha256:${A}`]],
  ])('%s', (_name, text, out) => {
    expect(requirementsFromText(text, 'r.txt')).toEqual(out);
  });

  it.each<[string, string, string]>([
    ['an index option', 'numpy\n--index-url https://x/simple\n', 'r.txt:2: pip options (--index-url) are not taken'],
    ['an editable install', '-e .\n', 'r.txt:1: pip options (-e) are not taken'],
    ['a nested file', '-r base.txt\n', 'r.txt:1: pip options (-r) are not taken'],
    ['a short hash', 'numpy==2.1.0 \\\n    --hash=sha256:abc\n', 'r.txt:1: "numpy==2.1.0      --hash=sha256:abc" "--hash=sha256:abc" is not a hash option'],
    ['a hash of md5', `numpy==2.1.0 --hash=md5:${A.slice(0, 32)}\n`, 'is not a hash option: write --hash=sha256:<64 hex digits>'],
    [
      'a hashed range',
      `numpy>=2.1 --hash=sha256:${A}\n`,
      'r.txt:1: "numpy>=2.1 --hash=sha256:' + A + '" "numpy>=2.1" has hashes but is not pinned to one version with ==',
    ],
    [
      'a line without hashes in a hashed lock file',
      `numpy==2.1.0 \\\n  --hash=sha256:${A}\n# via x\nscipy==1.14.1\n`,
      'r.txt:4: "scipy==1.14.1" has no --hash while line 1 has',
    ],
    [
      'a pip option in a hashed lock file',
      `--index-url https://x/simple\nnumpy==2.1.0 --hash=sha256:${A}\n`,
      'r.txt:1: pip options (--index-url) are not taken',
    ],
    ['a URL', 'https://example.com/x.whl\n', 'r.txt:1: "https://example.com/x.whl" is not a requirement specifier'],
    ['a direct reference', 'x @ https://example.com/x.whl\n', 'r.txt:1: "x @ https://example.com/x.whl" is not a requirement specifier'],
    ['a path', './vendor/x\n', 'r.txt:1: "./vendor/x" is not a requirement specifier'],
    ['nothing', '# only a comment\n\n', 'r.txt lists no requirement'],
    ['over 500 lines', Array.from({ length: 501 }, (_, i) => `p${i}==1`).join('\n'), 'r.txt lists 501 requirements, over the 500 a job may carry'],
  ])('refuses %s, naming the file and line', (_name, text, message) => {
    expect(() => requirementsFromText(text, 'r.txt')).toThrow(UsageError);
    expect(() => requirementsFromText(text, 'r.txt')).toThrow(message);
  });
});

describe('batch submit --python-requirements', () => {
  it("puts the file's requirements in python.requirements", () => {
    const dir = mkdtempSync(join(tmpdir(), 'submit-req-'));
    try {
      writeFileSync(join(dir, 'requirements.txt'), 'scikit-learn==1.5.2\n# via\nnumpy==2.1.0\n');
      expect(parseSubmitArgv(['--python-requirements', join(dir, 'requirements.txt'), '--', 'python3', 'train.py']).request).toEqual({
        command: ['python3', 'train.py'],
        python: { requirements: ['scikit-learn==1.5.2', 'numpy==2.1.0'] },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is a usage error when the file cannot be read', () => {
    expect(() => parseSubmitArgv(['--python-requirements', '/nonexistent/req.txt', '--', 'x'])).toThrow('cannot read /nonexistent/req.txt');
  });
});
