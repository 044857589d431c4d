/**
 * A job's `python` environment (issue 15, like Ray's `runtime_env` pip): the requirement
 * specifiers the executor installs into a virtual environment it builds once per digest and
 * node interpreter. Owns what a requirement line may be (a PEP 508 specifier without a URL,
 * a path or any pip option: the node's index settings are the operator's, never the job's),
 * the bounds of the list, its normal form and its digest.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

/** Most requirement lines of one job. */
export const MAX_PYTHON_REQUIREMENTS = 500;
/** Longest requirement line, in characters. */
export const MAX_PYTHON_REQUIREMENT_CHARS = 200;

const NAME = '[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?';
const SP = '[ \\t]*';
const EXTRAS = `(?:${SP}\\[${SP}${NAME}(?:${SP},${SP}${NAME})*${SP}\\])?`;
const VERSION = `(?:===|==|!=|~=|>=|<=|<|>)${SP}[A-Za-z0-9.*+!_]+(?:[-][A-Za-z0-9.*+!_]+)*`;
const VERSIONS = `(?:${SP}${VERSION}(?:${SP},${SP}${VERSION})*)?`;
// An environment marker: names, comparison operators, parentheses and quoted values; never a `/`, `@` or `#`.
const MARKER = `(?:${SP};${SP}(?:[A-Za-z0-9_.<>=!~ \\t()]|"[A-Za-z0-9_.*+!~ -]*"|'[A-Za-z0-9_.*+!~ -]*')+)?`;
/** One requirement specifier: `name[extras] <versions> ; <marker>`, e.g. `scikit-learn==1.5.2`, `requests[socks]>=2.31,<3`. */
export const REQUIREMENT_PATTERN = new RegExp(`^${SP}${NAME}${EXTRAS}${VERSIONS}${MARKER}${SP}$`);

const REQUIREMENT_HINT =
  'must be one requirement specifier such as "scikit-learn==1.5.2" or "requests>=2.31,<3" (a name, extras, versions, a ";" marker): no pip options (-e, -r, --index-url, --hash), paths or URLs; the node installs from the index its operator configured';

/** One requirement line. */
export const RequirementSchema = z
  .string()
  .min(1)
  .max(MAX_PYTHON_REQUIREMENT_CHARS)
  .regex(REQUIREMENT_PATTERN, REQUIREMENT_HINT)
  // pip reads a word after a space that starts with "-" as an option, even inside quotes
  .refine((line) => !/(^|\s)-/.test(line), REQUIREMENT_HINT);

/** The `python` of a submit. */
export const PythonEnvSchema = z.strictObject({
  /**
   * Requirement specifiers installed with `pip install -r` into the job's virtual environment,
   * e.g. `["scikit-learn==1.5.2", "numpy>=1.26"]`: 1 to `MAX_PYTHON_REQUIREMENTS` (500) lines of
   * at most 200 characters. Pin them (`==`) for the same environment on every node.
   */
  requirements: z.array(RequirementSchema).min(1).max(MAX_PYTHON_REQUIREMENTS),
});
export type PythonEnvRequest = z.infer<typeof PythonEnvSchema>;

/** A job's python environment as stored: its requirements in normal form and their digest. */
export interface PythonEnv {
  /** Requirement lines, trimmed, inner blanks as one space, sorted, without repeats. */
  requirements: string[];
  /** `sha256:` + hex of the normal lines joined by "\n" (`pythonEnvDigest`). */
  digest: string;
}

/** The normal form of requirement lines: trimmed, runs of blanks as one space, sorted by code unit, repeats dropped (pip installs them as a set). Pure. */
export function normalizeRequirements(lines: readonly string[]): string[] {
  const norm = lines.map((l) => l.trim().replace(/[ \t]+/g, ' '));
  return [...new Set(norm)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The digest of requirement lines: `sha256:` + hex of their normal form joined by "\n". The same
 * set of lines in any order and spacing has the same digest. The interpreter is not in it (not
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
