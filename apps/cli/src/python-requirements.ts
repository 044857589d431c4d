/**
 * `batch submit --python-requirements FILE`: a requirements file (or a lock file such as
 * `pip-compile`'s or `uv pip compile`'s output, without hashes) as the job's `python.requirements`.
 * Comments, blank lines and `\` continuations are pip's; every line left must be a requirement
 * specifier (`RequirementSchema`, what the API accepts): pip options, paths and URLs are refused
 * here with the file and line, since the node installs only from its own index.
 */
import { readFileSync } from 'node:fs';
import { MAX_PYTHON_REQUIREMENTS, RequirementSchema } from '@batchapi/api';
import { UsageError } from './submit-args';

/** The requirement lines of a requirements file's text; `file` names it in errors. Pure. */
export function requirementsFromText(text: string, file: string): string[] {
  const out: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i];
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]}`;
    // pip: a comment starts at "#" at the line's start or after a blank
    line = line.replace(/(^|\s)#.*$/, '').trim();
    if (!line) continue;
    if (/(^|\s)--hash[= ]/.test(line))
      throw new UsageError(
        `${file}:${lineNo}: hashes (--hash) are not taken: the node checks what it installs from its own index; write the lock file without them (pip-compile without --generate-hashes)`,
      );
    if (line.startsWith('-'))
      throw new UsageError(
        `${file}:${lineNo}: pip options (${line.split(/\s/)[0]}) are not taken: the node installs from the index its operator configured; list only requirement specifiers`,
      );
    if (!RequirementSchema.safeParse(line).success)
      throw new UsageError(`${file}:${lineNo}: "${line}" is not a requirement specifier such as "scikit-learn==1.5.2" (no paths, URLs or "name @ url")`);
    out.push(line);
  }
  if (!out.length) throw new UsageError(`${file} lists no requirement`);
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
