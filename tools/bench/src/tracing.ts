/**
 * `bench tracing`: what tracing costs on the submit path's span helpers — the same four
 * nested spans as `POST /v1/jobs` — with tracing off (the default: no exporter configured)
 * and on (a batch processor feeding an exporter that drops spans, so only our side counts).
 */
import { initTracing, inSpan, shutdownTracing, traceparentOf } from '@batchapi/telemetry';
import { ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { progress } from './rng';

class DropExporter implements SpanExporter {
  exported = 0;
  export(spans: ReadableSpan[], done: (r: { code: ExportResultCode }) => void): void {
    this.exported += spans.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  async shutdown(): Promise<void> {}
}

async function submitShape(): Promise<string | undefined> {
  return inSpan('job.submit', {}, async () => {
    await inSpan('admission.authenticate', {}, () => undefined);
    await inSpan('admission.validate', {}, () => undefined);
    return inSpan('admission.commit', {}, () => traceparentOf());
  });
}

async function perOp(n: number): Promise<number> {
  for (let i = 0; i < 1000; i++) await submitShape();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await submitShape();
  return Number(process.hrtime.bigint() - t0) / n;
}

export async function benchTracing(o: { iterations: number }): Promise<Record<string, unknown>> {
  progress(`tracing: ${o.iterations} submit-shaped span trees with tracing off`);
  const off = await perOp(o.iterations);
  const exporter = new DropExporter();
  initTracing('bench', { exporter });
  progress(`tracing: the same with tracing on`);
  const on = await perOp(o.iterations);
  await shutdownTracing();
  return {
    bench: 'tracing',
    iterations: o.iterations,
    offNanosPerSubmit: Math.round(off),
    onNanosPerSubmit: Math.round(on),
    spansExportedWhenOn: exporter.exported,
    note: 'off = the OpenTelemetry API no-op tracer; the submit itself (a validated etcd transaction) takes about a millisecond',
  };
}
