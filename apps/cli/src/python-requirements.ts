/**
 * `batch submit --python-requirements FILE`: a requirements file (or a lock file such as
 * `pip-compile`'s or `uv pip compile`'s output, with `--generate-hashes` or without) as the job's
 * `python.requirements`. Comments, blank lines and `\` continuations are pip's; every line left
 * must be a requirement specifier, optionally with `--hash=sha256:…` options (`RequirementSchema`,
 * what the API accepts; `--hash sha256:…` is written with `=`), and with hashes on every line or
 * none (pip's hash-checking rule): other pip options, paths and URLs are refused here with the
 * file and line, since the node installs only from its own index.
 */
import { readFileSync } from 'node:fs';
import { MAX_PYTHON_REQUIREMENTS, RequirementSchema } from '@batchapi/api';
import { UsageError } from './submit-args';

/** The requirement lines of a requirements file's text; `file` names it in errors. Pure. */
export function requirementsFromText(text: string, file: string): string[] {
  const out: string[] = [];
  const lineNos: number[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i];
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]}`;
    // pip: a comment starts at "#" at the line's start or after a blank
    line = line
      .replace(/(^|\s)#.*$/, '')
      .trim()
      .replace(/(^|[ \t])--hash[ \t]+(?=\S)/g, '$1--hash=');
    if (!line) continue;
    if (line.startsWith('-'))
      throw new UsageError(
        `${file}:${lineNo}: pip options (${line.split(/\s/)[0]}) are not taken: the node installs from the index its operator configured; list only requirement specifiers (with their --hash options)`,
      );
    const parsed = RequirementSchema.safeParse(line);
    if (!parsed.success) {
      // the hash options' own sentence when there is one; else what a line must be
      const why = /--hash/.test(line)
        ? parsed.error.issues[0].message
        : 'is not a requirement specifier such as "scikit-learn==1.5.2" (no paths, URLs or "name @ url")';
      throw new UsageError(`${file}:${lineNo}: "${line.length > 120 ? `${line.slice(0, 120)}…` : line}" ${why}`);
    }
    out.push(line);
    lineNos.push(lineNo);
  }
  if (!out.length) throw new UsageError(`${file} lists no requirement`);
  const hashed = out.map((l) => /(^|[ \t])--hash=/.test(l));
  if (hashed.some(Boolean) && !hashed.every(Boolean)) {
    const bare = hashed.indexOf(false);
    throw new UsageError(
      `${file}:${lineNos[bare]}: "${out[bare]}" has no --hash while line ${lineNos[hashed.indexOf(true)]} has: with one hash pip checks every requirement, so each needs its hashes (pip-compile --generate-hashes writes them all, dependencies included)`,
    );
  }
  if (out.length > MAX_PYTHON_REQUIREMENTS)
    throw new UsageError(`${file} lists ${out.length} requirements, over the ${MAX_PYTHON_REQUIREMENTS} a job may carry`);
  return out;
}

/** `requirementsFromText` of a file; `-` is stdin. */
export function readRequirementsFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return requirementsFromText(text, file);
}
