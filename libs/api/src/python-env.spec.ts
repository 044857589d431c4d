import { createHash } from 'node:crypto';
import {
  MAX_PYTHON_REQUIREMENT_CHARS,
  MAX_PYTHON_REQUIREMENTS,
  normalizeRequirements,
  pythonEnvDigest,
  REQUIREMENT_PATTERN,
  RequirementSchema,
} from './python-env';
import { parseSubmit } from './schemas';
import { jobView } from './views';
import { JobViewSchema } from './responses';

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
  ])('accepts the specifier %j', (line) => {
    expect(RequirementSchema.safeParse(line).success).toBe(true);
  });

  it.each([
    ['an editable install', '-e .'],
    ['a nested requirements file', '-r other.txt'],
    ['an index option', '--index-url https://evil.example/simple'],
    ['an extra index on a requirement line', 'numpy==2.0 --extra-index-url https://evil.example'],
    ['a hash option (a lock file with --generate-hashes)', 'numpy==2.0 --hash=sha256:abc'],
    ['a URL', 'https://example.com/pkg.whl'],
    ['a direct reference', 'pkg @ https://example.com/pkg.whl'],
    ['a relative path', './pkg'],
    ['an absolute path', '/tmp/pkg.whl'],
    ['a comment', 'numpy # pinned'],
    ['two lines in one', 'numpy\npandas'],
    ['an option hidden in a marker value', 'numpy; os_name == "x --index-url y"'],
    ['an empty line', ''],
    ['a line over the bound', 'a'.repeat(MAX_PYTHON_REQUIREMENT_CHARS + 1)],
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
  ])('refuses %s with 400 naming %s', (_name, f, python) => {
    expect(() => parseSubmit({ command: ['x'], python })).toThrow(field(f));
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

  it('differs when a pin differs', () => {
    expect(pythonEnvDigest(['a==2'])).not.toBe(pythonEnvDigest(['a==3']));
  });

  it('normalizes by code unit order (upper case first), not locale', () => {
    expect(normalizeRequirements(['b', 'B', 'a'])).toEqual(['B', 'a', 'b']);
  });
});
