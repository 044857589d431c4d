import { MAX_JOB_RECORD_BYTES, storedJobBytes } from './limits';
import { parseSubmit } from './schemas';

const entries = (n: number, value = 'v') => Object.fromEntries(Array.from({ length: n }, (_, k) => [`K${k}`, value]));

describe('parseSubmit limits', () => {
  it.each([
    // [what, body, status, code, field]
    // 513 > 512 variables
    ['513 env variables', { command: ['x'], env: entries(513) }, 400, 'invalid_argument', 'env'],
    // 32,769 ASCII bytes > 32 KiB (32,768)
    ['an env value of 32,769 bytes', { command: ['x'], env: { A: 'a'.repeat(32_769) } }, 400, 'invalid_argument', 'env.A'],
    // 11,000 "€" = 33,000 UTF-8 bytes > 32,768, though only 11,000 characters
    ['an env value of 11,000 "€" (33,000 bytes)', { command: ['x'], env: { A: '€'.repeat(11_000) } }, 400, 'invalid_argument', 'env.A'],
    ['65 labels', { command: ['x'], labels: entries(65) }, 400, 'invalid_argument', 'labels'],
    ['33 selector entries', { command: ['x'], selector: entries(33) }, 400, 'invalid_argument', 'selector'],
    ['1,025 command arguments', { command: Array.from({ length: 1025 }, () => 'x') }, 400, 'invalid_argument', 'command'],
    // 90,000 "é" = 180,000 bytes, twice: 360,004 bytes of JSON > 256 KiB (262,144), though 180,004 characters
    ['items of 360 KB in UTF-8 (180 K characters)', { command: ['x'], items: ['é'.repeat(90_000), 'é'.repeat(90_000)] }, 400, 'invalid_argument', 'items'],
    // 30 × 32,000 = 960,000 bytes of env: the record is over 384 KiB (393,216); env is its largest part
    ['the reproduction: 30 env values of 32,000 characters', { command: ['x'], env: entries(30, 'x'.repeat(32_000)) }, 413, 'payload_too_large', 'env'],
    // 1,024 arguments × 400 bytes ≈ 410 KB of command > 393,216
    ['a command of 410 KB', { command: Array.from({ length: 1024 }, () => 'c'.repeat(400)) }, 413, 'payload_too_large', 'command'],
  ])('refuses %s', (_name, body, status, code, field) => {
    expect(() => parseSubmit(body)).toThrow(expect.objectContaining({ name: 'ApiError', status, code, details: expect.objectContaining({ field }) }));
  });

  it('accepts a job at the limits: 512 variables, values up to the record cap', () => {
    // 512 × 700 bytes = 358,400 bytes of env (+ names and JSON), under 393,216
    const { spec } = parseSubmit({ command: ['x'], env: entries(512, 'v'.repeat(700)), labels: entries(64), selector: entries(32) });
    expect(storedJobBytes(spec)).toBeLessThanOrEqual(MAX_JOB_RECORD_BYTES);
  });
});
