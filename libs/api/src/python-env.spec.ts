import { createHash } from 'node:crypto';
import {
  MAX_PYTHON_REQUIREMENT_CHARS,
  MAX_PYTHON_REQUIREMENT_HASHES,
  MAX_PYTHON_REQUIREMENT_LINE_CHARS,
  MAX_PYTHON_REQUIREMENTS,
  normalizeRequirements,
  pythonEnvDigest,
  REQUIREMENT_PATTERN,
  RequirementSchema,
  requirementsHashed,
} from './python-env';
import { parseSubmit } from './schemas';
import { jobView } from './views';
import { JobViewSchema } from './responses';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const field = (f: string) => expect.objectContaining({ name: 'ApiError', details: expect.objectContaining({ field: f }) });

describe('a python requirement line', () => {
  it.each([
    'scikit-learn==1.5.2',
    'numpy',
    'requests[socks,security]>=2.31,<3',
    'torch ~= 2.4.0',
    'pandas===2.2.3',
    'tomli>=2.0.1; python_version < "3.11"',
    "pywin32==306 ; sys_platform == 'win32'",
    'foo.bar_baz-qux!=1.0-post1',
    'pkg==1.*',
    // pip's hash-checking mode, as pip-compile --generate-hashes writes it (continuations joined)
    `numpy==2.1.3 --hash=sha256:${A}`,
    `numpy==2.1.3 --hash=sha256:${A} --hash=sha256:${B}`,
    `tomli==2.0.1 ; python_version < "3.11" --hash=sha256:${A}`,
    `requests[socks]===2.32.3 \t--hash=sha256:${A.toUpperCase()}`,
  ])('accepts the specifier %j', (line) => {
    expect(RequirementSchema.safeParse(line).success).toBe(true);
  });

  it.each([
    ['an editable install', '-e .'],
    ['a nested requirements file', '-r other.txt'],
    ['an index option', '--index-url https://evil.example/simple'],
    ['an extra index on a requirement line', 'numpy==2.0 --extra-index-url https://evil.example'],
    ['a hash that is not 64 hex digits', 'numpy==2.0 --hash=sha256:abc'],
    ['a hash of another algorithm', `numpy==2.0 --hash=sha512:${A}`],
    ['a hash with a blank instead of "="', `numpy==2.0 --hash sha256:${A}`],
    ['a hash before the specifier', `--hash=sha256:${A} numpy==2.0`],
    ['an option after the hashes', `numpy==2.0 --hash=sha256:${A} --index-url=https://evil.example`],
    ['a hashed range (pip checks only pinned ones)', `numpy>=2.0 --hash=sha256:${A}`],
    ['a hashed wildcard pin', `numpy==2.* --hash=sha256:${A}`],
    ['a hashed name without a version', `numpy --hash=sha256:${A}`],
    ['more hashes than the bound', `numpy==2.0${` --hash=sha256:${A}`.repeat(MAX_PYTHON_REQUIREMENT_HASHES + 1)}`],
    ['a specifier over the bound before its hashes', `${'a'.repeat(MAX_PYTHON_REQUIREMENT_CHARS - 2)}==1 --hash=sha256:${A}`],
    ['a URL', 'https://example.com/pkg.whl'],
    ['a direct reference', 'pkg @ https://example.com/pkg.whl'],
    ['a relative path', './pkg'],
    ['an absolute path', '/tmp/pkg.whl'],
    ['a comment', 'numpy # pinned'],
    ['two lines in one', 'numpy\npandas'],
    ['an option hidden in a marker value', 'numpy; os_name == "x --index-url y"'],
    ['an empty line', ''],
    ['a specifier over the bound', 'a'.repeat(MAX_PYTHON_REQUIREMENT_CHARS + 1)],
    ['a line over the bound', 'a'.repeat(MAX_PYTHON_REQUIREMENT_LINE_CHARS + 1)],
  ])('refuses %s', (_name, line) => {
    expect(RequirementSchema.safeParse(line).success).toBe(false);
  });

  it('is one pattern: the OpenAPI document shows the same one', () => {
    expect(REQUIREMENT_PATTERN.test('scikit-learn==1.5.2')).toBe(true);
  });
});

describe('a python environment in a submit', () => {
  it('is stored in normal form with its digest, and shown in the job view', () => {
    const { spec } = parseSubmit({ command: ['python3', 't.py'], python: { requirements: ['  numpy==2.0 ', 'scikit-learn==1.5.2', 'numpy==2.0'] } });
    expect(spec.python?.requirements).toEqual(['numpy==2.0', 'scikit-learn==1.5.2']);
    // sha256 of the sorted, deduplicated lines joined by "\n"
    expect(spec.python?.digest).toBe(`sha256:${createHash('sha256').update('numpy==2.0\nscikit-learn==1.5.2').digest('hex')}`);
    const view = jobView({
      id: 'j',
      tenant: 't',
      queue: 'q',
      spec,
      phase: 'Queued',
      pending: [],
      counts: { succeeded: 0, failed: 0, cancelled: 0 },
      createdAt: 0,
    });
    expect(JobViewSchema.parse(view).python).toEqual(spec.python);
  });

  it.each([
    ['a pip option in line 3', 'python.requirements.3', { requirements: ['a', 'b', 'c', '--index-url=https://x'] }],
    ['a URL in line 0', 'python.requirements.0', { requirements: ['https://x/y.whl'] }],
    ['no requirement', 'python.requirements', { requirements: [] }],
    ['more lines than the bound', 'python.requirements', { requirements: Array.from({ length: MAX_PYTHON_REQUIREMENTS + 1 }, (_, i) => `p${i}`) }],
    ['an unknown field', 'python.lock', { requirements: ['a'], lock: 'x' }],
    ['requirements that are not a list', 'python.requirements', { requirements: 'numpy' }],
    // pip's rule: one hash puts every requirement in hash-checking mode; the first line without one is named
    [
      'line 2 without a hash when line 0 has one',
      'python.requirements.2',
      { requirements: [`a==1 --hash=sha256:${A}`, `b==1 --hash=sha256:${B}`, 'c==1', 'd==1'] },
    ],
    ['line 0 without a hash when line 1 has one', 'python.requirements.0', { requirements: ['a==1', `b==1 --hash=sha256:${B}`] }],
    ['a hash of md5 in line 1', 'python.requirements.1', { requirements: [`a==1 --hash=sha256:${A}`, 'b==1 --hash=md5:0123456789abcdef0123456789abcdef'] }],
    ['a hashed range in line 1', 'python.requirements.1', { requirements: [`a==1 --hash=sha256:${A}`, `b>=1 --hash=sha256:${B}`] }],
  ])('refuses %s with 400 naming %s', (_name, f, python) => {
    expect(() => parseSubmit({ command: ['x'], python })).toThrow(field(f));
  });

  it.each([
    [
      'a hash that is not sha256:<64 hex>',
      { requirements: ['b==1 --hash=md5:0123'] },
      /"--hash=md5:0123" is not a hash option: write --hash=sha256:<64 hex digits>/,
    ],
    ['a hashed range', { requirements: [`b>=1 --hash=sha256:${B}`] }, /"b>=1" has hashes but is not pinned to one version with ==/],
    ['a line without a hash beside one with', { requirements: [`a==1 --hash=sha256:${A}`, 'b==1'] }, /has no --hash while line 0 has/],
  ])('says what is wrong with %s', (_name, python, message) => {
    expect(() => parseSubmit({ command: ['x'], python })).toThrow(
      expect.objectContaining({ status: 400, code: 'invalid_argument', message: expect.stringMatching(message) }),
    );
  });

  it('stores hashed lines with their hashes lower-case, sorted and unique, and knows they are hashed', () => {
    const { spec } = parseSubmit({
      command: ['x'],
      python: { requirements: [`b==1  --hash=sha256:${B.toUpperCase()} --hash=sha256:${A}  --hash=sha256:${B}`, `a==1 --hash=sha256:${A}`] },
    });
    expect(spec.python?.requirements).toEqual([`a==1 --hash=sha256:${A}`, `b==1 --hash=sha256:${A} --hash=sha256:${B}`]);
    expect(requirementsHashed(spec.python!.requirements)).toBe(true);
    expect(requirementsHashed(['a==1'])).toBe(false);
  });
});

describe('pythonEnvDigest', () => {
  it.each([
    ['order', ['b==1', 'a==2'], ['a==2', 'b==1']],
    ['blanks around and inside', [' a==2 ', 'b ;  python_version<"4"'], ['a==2', 'b ; python_version<"4"']],
    ['repeats', ['a==2', 'a==2'], ['a==2']],
  ])('does not depend on %s', (_name, x, y) => {
    expect(pythonEnvDigest(x)).toBe(pythonEnvDigest(y));
  });

  it.each([
    [
      "a line's hashes in another order, case or repeated",
      [`a==2 --hash=sha256:${A} --hash=sha256:${B}`],
      [`a==2 --hash=sha256:${B.toUpperCase()}  --hash=sha256:${A} --hash=sha256:${A}`],
    ],
  ])('does not depend on %s', (_name, x, y) => {
    expect(pythonEnvDigest(x)).toBe(pythonEnvDigest(y));
  });

  it.each([
    ['a pin differs', ['a==2'], ['a==3']],
    // the hashes are part of the environment: the same pins with other files are another environment
    ['a hash is added', ['a==2'], [`a==2 --hash=sha256:${A}`]],
    ['a hash differs', [`a==2 --hash=sha256:${A}`], [`a==2 --hash=sha256:${B}`]],
    ['a line gains a second hash', [`a==2 --hash=sha256:${A}`], [`a==2 --hash=sha256:${A} --hash=sha256:${B}`]],
  ])('differs when %s', (_name, x, y) => {
    expect(pythonEnvDigest(x)).not.toBe(pythonEnvDigest(y));
  });

  it('normalizes by code unit order (upper case first), not locale', () => {
    expect(normalizeRequirements(['b', 'B', 'a'])).toEqual(['B', 'a', 'b']);
  });
});
