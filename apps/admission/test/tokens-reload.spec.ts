/**
 * The tokens file is watched: a token added to it is accepted and a token removed from it is
 * refused without a restart, including when the file is replaced by a rename (as a Kubernetes
 * Secret update swaps its files); a malformed new file is refused and the tokens in use stay.
 */
import { createHash, pbkdf2 } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@batchapi/proc';
import { TokenAuthenticator } from '../src/auth';

const digest = (t: string) => createHash('sha256').update(t).digest('hex');
const tokens = (...names: string[]) => JSON.stringify({ tokens: names.map((n) => ({ sha256: digest(n), tenant: `t-${n}`, role: 'tenant' })) });

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'batch-tokens-'));
  file = join(dir, 'tokens.json');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The tenant `token` authenticates as, or `refused`. */
const who = (auth: TokenAuthenticator, token: string) => {
  try {
    return auth.authenticate(`Bearer ${token}`).tenant;
  } catch {
    return 'refused';
  }
};

it('accepts an added token and refuses a removed one without a restart; keeps the tokens in use when the new file is malformed', async () => {
  writeFileSync(file, tokens('alpha'));
  const reloads: Array<{ reloaded: number } | { refused: string }> = [];
  const auth = TokenAuthenticator.watchFile(file, { intervalMs: 20, onReload: (o) => reloads.push(o) });
  try {
    expect([who(auth, 'alpha'), who(auth, 'beta')]).toEqual(['t-alpha', 'refused']);

    // rotation, step 1: the new token beside the old one (written in place)
    writeFileSync(file, tokens('alpha', 'beta'));
    expect(
      await waitFor(
        () => who(auth, 'beta'),
        (t) => t === 't-beta',
      ),
    ).toBe('t-beta');
    expect(who(auth, 'alpha')).toBe('t-alpha');

    // step 2: the old one removed, the file replaced by a rename (a new inode, as a Secret update does)
    writeFileSync(join(dir, 'next.json'), tokens('beta'));
    renameSync(join(dir, 'next.json'), file);
    expect(
      await waitFor(
        () => who(auth, 'alpha'),
        (t) => t === 'refused',
      ),
    ).toBe('refused');
    expect(who(auth, 'beta')).toBe('t-beta');

    // a malformed file is refused: the tokens in use stay
    writeFileSync(file, '{"tokens": [{"sha256": "not hex"');
    await waitFor(
      () => reloads.length,
      () => 'refused' in reloads[reloads.length - 1],
    );
    expect(reloads.at(-1)).toEqual({ refused: expect.any(String) });
    expect(who(auth, 'beta')).toBe('t-beta');
    expect(reloads.filter((r) => 'reloaded' in r)).toEqual([{ reloaded: 2 }, { reloaded: 1 }]);
  } finally {
    auth.close();
  }
});

it('sees a change made the moment the watch starts, before its first poll (20 times)', async () => {
  // fs.watchFile took its first stat on the thread pool after starting: a write that beat it
  // became its baseline and the new token was never accepted (a run on two busy workers saw it).
  // Here the thread pool is kept busy (4 key derivations, its 4 threads) while the watch starts,
  // so a first stat taken there always comes after the write, as on a busy machine.
  for (let i = 0; i < 20; i++) {
    writeFileSync(file, tokens('alpha'));
    const busy = Array.from({ length: 4 }, () => new Promise((done) => pbkdf2('x', 'salt', 20_000, 32, 'sha256', done)));
    const auth = TokenAuthenticator.watchFile(file, { intervalMs: 10 });
    try {
      writeFileSync(file, tokens('alpha', `beta${i}`));
      expect(
        await waitFor(
          () => who(auth, `beta${i}`),
          (t) => t !== 'refused',
          { timeoutMs: 5000 },
        ),
      ).toBe(`t-beta${i}`);
    } finally {
      auth.close();
      await Promise.all(busy);
    }
  }
});
