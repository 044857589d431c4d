/**
 * A job's `python` environment (issue 15, like Ray's `runtime_env` pip): the requirement
 * specifiers the executor installs into a virtual environment it builds once per digest and
 * node interpreter. Owns what a requirement line may be (a PEP 508 specifier without a URL,
 * a path or any pip option but `--hash`: the node's index settings are the operator's, never the
 * job's), pip's hash-checking rule (hashes on every line or none), the bounds of the list, its
 * normal form and its digest.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

/** Most requirement lines of one job. */
export const MAX_PYTHON_REQUIREMENTS = 500;
/** Longest requirement specifier (a line without its `--hash` options), in characters. */
export const MAX_PYTHON_REQUIREMENT_CHARS = 200;
/**
 * Most `--hash` options of one line: a lock file (`pip-compile --generate-hashes`) lists one per
 * file of the pinned release, ~60 for numpy's wheels and sdist.
 */
export const MAX_PYTHON_REQUIREMENT_HASHES = 128;
/** `--hash=sha256:<64 hex>` with the blank before it: 80 characters. */
const HASH_OPTION_CHARS = ' --hash=sha256:'.length + 64;
/** Longest requirement line with its hashes, in characters: 200 + 128 × 80 = 10,440. */
export const MAX_PYTHON_REQUIREMENT_LINE_CHARS = MAX_PYTHON_REQUIREMENT_CHARS + MAX_PYTHON_REQUIREMENT_HASHES * HASH_OPTION_CHARS;

const NAME = '[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?';
const SP = '[ \\t]*';
const EXTRAS = `(?:${SP}\\[${SP}${NAME}(?:${SP},${SP}${NAME})*${SP}\\])?`;
const VERSION = `(?:===|==|!=|~=|>=|<=|<|>)${SP}[A-Za-z0-9.*+!_]+(?:[-][A-Za-z0-9.*+!_]+)*`;
const VERSIONS = `(?:${SP}${VERSION}(?:${SP},${SP}${VERSION})*)?`;
// An environment marker: names, comparison operators, parentheses and quoted values; never a `/`, `@` or `#`.
const MARKER = `(?:${SP};${SP}(?:[A-Za-z0-9_.<>=!~ \\t()]|"[A-Za-z0-9_.*+!~ -]*"|'[A-Za-z0-9_.*+!~ -]*')+)?`;
const HASH = '--hash=sha256:[0-9A-Fa-f]{64}';
/**
 * One requirement line: a specifier `name[extras] <versions> ; <marker>`, e.g. `scikit-learn==1.5.2`,
 * `requests[socks]>=2.31,<3`, then optionally `--hash=sha256:<64 hex>` options (pip's hash-checking
 * mode, as `pip-compile --generate-hashes` writes them).
 */
export const REQUIREMENT_PATTERN = new RegExp(`^${SP}${NAME}${EXTRAS}${VERSIONS}${MARKER}(?:[ \\t]+${HASH})*${SP}$`);

const REQUIREMENT_HINT =
  'must be one requirement specifier such as "scikit-learn==1.5.2" or "requests>=2.31,<3" (a name, extras, versions, a ";" marker), optionally followed by --hash=sha256:<64 hex digits> options: no other pip options (-e, -r, --index-url), paths or URLs; the node installs from the index its operator configured';

/** A specifier (its marker aside) pinned to one version, as pip's hash-checking mode requires: `name[extras]==1.2.3` or `===`, no wildcard. */
const PINNED = new RegExp(`^${SP}${NAME}${EXTRAS}${SP}===?${SP}[A-Za-z0-9.+!_]+(?:-[A-Za-z0-9.+!_]+)*${SP}$`);

/** A requirement line split into its specifier and its hashes (lower-case hex, in the line's order). */
export interface RequirementLine {
  spec: string;
  hashes: string[];
}

/**
 * A line's specifier and `--hash` options, or a sentence saying what is wrong with it (a hash that is
 * not `sha256:<64 hex>`, more than `MAX_PYTHON_REQUIREMENT_HASHES`, a hashed specifier not pinned to
 * one version with `==`, as pip's hash-checking mode requires). Pure.
 */
export function splitRequirementLine(line: string): RequirementLine | string {
  const at = line.search(/(^|[ \t])--hash\b/);
  if (at < 0) return { spec: line.trim(), hashes: [] };
  const spec = line.slice(0, at).trim();
  const hashes: string[] = [];
  for (const word of line
    .slice(at)
    .trim()
    .split(/[ \t]+/)) {
    const m = /^--hash=sha256:([0-9A-Fa-f]{64})$/.exec(word);
    if (!m)
      return `"${word.slice(0, 80)}" is not a hash option: write --hash=sha256:<64 hex digits> (only sha256, as pip-compile --generate-hashes writes them), after the specifier`;
    hashes.push(m[1].toLowerCase());
  }
  if (hashes.length > MAX_PYTHON_REQUIREMENT_HASHES) return `has ${hashes.length} --hash options, over the ${MAX_PYTHON_REQUIREMENT_HASHES} a line may carry`;
  if (!PINNED.test(spec.split(';')[0]))
    return `"${spec.slice(0, 80)}" has hashes but is not pinned to one version with == (pip's hash-checking mode installs exactly the files the hashes name), e.g. "numpy==2.1.3 --hash=sha256:…"`;
  return { spec, hashes };
}

/** One requirement line. */
export const RequirementSchema = z
  .string()
  .min(1)
  .max(MAX_PYTHON_REQUIREMENT_LINE_CHARS)
  // the hash options' own messages first: they say more than the pattern's
  .superRefine((line, ctx) => {
    const r = splitRequirementLine(line);
    if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: r });
    else if (r.spec.length > MAX_PYTHON_REQUIREMENT_CHARS)
      ctx.addIssue({ code: 'custom', message: `the specifier has ${r.spec.length} characters, over the ${MAX_PYTHON_REQUIREMENT_CHARS} one may have` });
    // pip reads a word after a space that starts with "-" as an option, even inside quotes
    else if (/(^|\s)-/.test(r.spec)) ctx.addIssue({ code: 'custom', message: REQUIREMENT_HINT });
  })
  .regex(REQUIREMENT_PATTERN, REQUIREMENT_HINT);

/**
 * Requirement lines, all with hashes or none (pip's rule: one `--hash` puts pip in hash-checking
 * mode, where every requirement needs its own); the issue names the first line that breaks it.
 */
export const RequirementsSchema = z
  .array(RequirementSchema)
  .min(1)
  .max(MAX_PYTHON_REQUIREMENTS)
  .superRefine((lines, ctx) => {
    const hashed = lines.map((l) => /(^|[ \t])--hash=/.test(l));
    if (!hashed.some(Boolean)) return;
    const bare = hashed.indexOf(false);
    if (bare >= 0)
      ctx.addIssue({
        code: 'custom',
        path: [bare],
        message: `has no --hash while line ${hashed.indexOf(true)} has: with one hash pip checks every requirement, so each line needs its --hash=sha256:… (pip-compile --generate-hashes writes them all, dependencies included)`,
      });
  });

/** The `python` of a submit. */
export const PythonEnvSchema = z.strictObject({
  /**
   * Requirement specifiers installed with `pip install -r` into the job's virtual environment,
   * e.g. `["scikit-learn==1.5.2", "numpy>=1.26"]`: 1 to `MAX_PYTHON_REQUIREMENTS` (500) lines of
   * at most 200 characters, each optionally followed by up to 128 `--hash=sha256:<64 hex>` options.
   * Pin them (`==`) for the same environment on every node. With hashes (a lock file of
   * `pip-compile --generate-hashes`), every line has them, and the node installs with
   * `--require-hashes`: exactly the files the hashes name, dependencies included, or the attempt
   * fails as the job's fault.
   */
  requirements: RequirementsSchema,
});
export type PythonEnvRequest = z.infer<typeof PythonEnvSchema>;

/** A job's python environment as stored: its requirements in normal form and their digest. */
export interface PythonEnv {
  /** Requirement lines, trimmed, inner blanks as one space, hashes lower-case, sorted and unique after the specifier, lines sorted, without repeats. */
  requirements: string[];
  /** `sha256:` + hex of the normal lines joined by "\n" (`pythonEnvDigest`). */
  digest: string;
}

/** Whether requirement lines carry hashes (then pip runs with `--require-hashes`). Pure. */
export function requirementsHashed(lines: readonly string[]): boolean {
  return lines.some((l) => /(^|[ \t])--hash=/.test(l));
}

/** One line's normal form: the specifier's blanks as one space, then its hashes lower-case, sorted, unique. Pure. */
function normalizeLine(line: string): string {
  const r = splitRequirementLine(line);
  const spec = (typeof r === 'string' ? line.trim() : r.spec).replace(/[ \t]+/g, ' ');
  if (typeof r === 'string' || !r.hashes.length) return spec;
  return [spec, ...[...new Set(r.hashes)].sort().map((h) => `--hash=sha256:${h}`)].join(' ');
}

/**
 * The normal form of requirement lines: trimmed, runs of blanks as one space, each line's hashes
 * lower-case, sorted and unique, lines sorted by code unit, repeats dropped (pip installs them as a
 * set and accepts any of a line's hashes). Pure.
 */
export function normalizeRequirements(lines: readonly string[]): string[] {
  const norm = lines.map(normalizeLine);
  return [...new Set(norm)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The digest of requirement lines: `sha256:` + hex of their normal form joined by "\n", hashes
 * included (another hash is another environment). The same set of lines in any order and spacing
 * has the same digest. The interpreter is not in it (not
 * known at submit): each node keys its environments by digest and its own interpreter version.
 */
export function pythonEnvDigest(lines: readonly string[]): string {
  return `sha256:${createHash('sha256').update(normalizeRequirements(lines).join('\n')).digest('hex')}`;
}

/** The stored form of a validated `python` request. */
export function pythonEnvOf(req: PythonEnvRequest): PythonEnv {
  const requirements = normalizeRequirements(req.requirements);
  return { requirements, digest: pythonEnvDigest(requirements) };
}
