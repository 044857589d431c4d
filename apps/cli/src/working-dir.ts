/**
 * `batch submit --working-dir DIR`: packs the directory (`packWorkingDir` of libs/blobs), asks
 * the API whether the tenant already has that digest, uploads it only if not, and answers the
 * digest the job names. Says what it did on stderr (stdout stays the job id).
 */
import type { BatchClient } from '@batchapi/sdk';
import { UsageError } from './submit-args';

/** `--working-dir-max-mib` when not given: the API's default bound (100 MiB). */
export const DEFAULT_WORKING_DIR_MAX_MIB = 100;

/** Packs and uploads `dir` if the tenant does not have it yet; the digest. Lines of progress go to `say`. */
export async function shipWorkingDir(client: BatchClient, dir: string, maxMib: number, say: (line: string) => void): Promise<string> {
  // Loaded here: the blob store library (and its S3 client) is not read by the other commands.
  const { packWorkingDir, WorkingDirError } = await import('@batchapi/blobs');
  let packed;
  try {
    packed = await packWorkingDir(dir, { maxBytes: Math.round(maxMib * 1024 * 1024), optionName: '--working-dir-max-mib' });
  } catch (err) {
    if (err instanceof WorkingDirError) throw new UsageError(err.message);
    throw err;
  }
  const mib = (n: number) => (n / 1024 / 1024).toFixed(2);
  say(
    `working dir ${dir}: packed ${packed.files} file${packed.files === 1 ? '' : 's'}, ${mib(packed.tarBytes)} MiB (${mib(packed.gz.length)} MiB gzip), ${packed.digest}`,
  );
  if (packed.skipped.length)
    say(`working dir: left out ${packed.skipped.length} symbolic link(s) or special file(s): ${packed.skipped.slice(0, 5).join(', ')}`);
  if (await client.getWorkingDir(packed.digest)) {
    say('working dir: already uploaded');
    return packed.digest;
  }
  const { created } = await client.uploadWorkingDir(packed.digest, packed.gz);
  say(created ? 'working dir: uploaded' : 'working dir: already uploaded');
  return packed.digest;
}
