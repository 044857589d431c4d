/**
 * etcd over TLS with client certificates: certificates made in the test with openssl, an etcd
 * member that requires client certs; a client with the CA and its cert works, one without a
 * client certificate is refused.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdStore, etcdBinaryOrExplain } from '@batchapi/store';
import { freePort, waitUntil } from '@batchapi/proc';

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version']);
    return true;
  } catch {
    return false;
  }
})();
let dir: string;
let etcd: ChildProcess;
let url: string;

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA, in `d`. */
function makeCerts(d: string): void {
  const ssl = (command: string) => execFileSync('openssl', command.split(' '), { cwd: d, stdio: 'ignore' });
  ssl('req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=batchapi-test-ca');
  /** `name`.key and `name`.pem for common name `cn`, signed by the CA with the extensions `ext`. */
  const issue = (name: string, cn: string, ext: string) => {
    writeFileSync(join(d, `${name}.ext`), ext);
    ssl(`req -newkey rsa:2048 -nodes -keyout ${name}.key -out ${name}.csr -subj /CN=${cn}`);
    ssl(`x509 -req -in ${name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ${name}.pem -days 1 -extfile ${name}.ext`);
  };
  issue('server', 'etcd', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  issue('client', 'batchapi-service', 'extendedKeyUsage=clientAuth\n');
}

(hasOpenssl ? describe : describe.skip)('etcd over TLS (openssl on PATH)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'etcd-tls-'));
    makeCerts(dir);
    const [client, peer] = [await freePort(), await freePort()];
    url = `https://127.0.0.1:${client}`;
    etcd = spawn(
      etcdBinaryOrExplain(),
      [
        '--name',
        'tls',
        '--data-dir',
        join(dir, 'data'),
        '--listen-client-urls',
        url,
        '--advertise-client-urls',
        url,
        '--listen-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-cluster',
        `tls=http://127.0.0.1:${peer}`,
        '--cert-file',
        join(dir, 'server.pem'),
        '--key-file',
        join(dir, 'server.key'),
        '--trusted-ca-file',
        join(dir, 'ca.pem'),
        '--client-cert-auth',
      ],
      { stdio: 'ignore' },
    );
    const store = new EtcdStore({ endpoints: [url], tls: tlsFiles(true) });
    const answers = () =>
      store.get('/probe').then(
        () => true,
        () => false,
      );
    await waitUntil(answers, { timeoutMs: 15_000, intervalMs: 200 });
    await store.close();
  }, 30_000);
  afterAll(() => {
    etcd?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const tlsFiles = (withClientCert: boolean) => ({
    ca: readFileSync(join(dir, 'ca.pem')),
    ...(withClientCert ? { cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) } : {}),
  });

  it('works with the CA and a client certificate', async () => {
    const store = new EtcdStore({ endpoints: [url], tls: tlsFiles(true) });
    try {
      expect((await store.txn([{ key: '/batch/tls-check', absent: true }], [{ put: '/batch/tls-check', value: { ok: true } }])).succeeded).toBe(true);
      expect((await store.get<{ ok: boolean }>('/batch/tls-check'))?.value).toEqual({ ok: true });
    } finally {
      await store.close();
    }
  });

  it('refuses a client without a certificate', async () => {
    const store = new EtcdStore({ endpoints: [url], tls: tlsFiles(false), callTimeoutMs: 1500 });
    try {
      await expect(store.get('/batch/tls-check')).rejects.toBeDefined();
    } finally {
      await store.close();
    }
  });
});
