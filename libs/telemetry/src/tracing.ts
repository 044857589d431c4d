/**
 * OpenTelemetry tracing for every BatchAPI process. Off unless an exporter is configured by
 * the standard variables (`OTEL_TRACES_EXPORTER=otlp` or `OTEL_EXPORTER_OTLP_ENDPOINT` /
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), so the hot path then only meets the API's no-op
 * tracer. Tests pass an in-memory exporter.
 */
import { context, type Context, propagation, type Span, SpanKind, SpanStatusCode, trace, type Link } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

/** The tracer name every BatchAPI span is created under. */
export const TRACER = 'batchapi';

let provider: NodeTracerProvider | undefined;

/** Options of `initTracing`. */
export interface TracingOptions {
  /** Export to this exporter synchronously (tests). @default OTLP/HTTP when configured by env, else none */
  exporter?: SpanExporter;
  /** Environment to read `OTEL_*` from. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/** True when the environment asks for OTLP export. */
export function otlpConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true' || env.OTEL_TRACES_EXPORTER === 'none') return false;
  return env.OTEL_TRACES_EXPORTER === 'otlp' || !!env.OTEL_EXPORTER_OTLP_ENDPOINT || !!env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
}

/**
 * Sets up tracing for a service once per process. Returns false when tracing stays off.
 * The W3C propagator is always registered so trace context passes through even when off.
 */
export function initTracing(serviceName: string, opts: TracingOptions = {}): boolean {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const env = opts.env ?? process.env;
  if (provider) return true;
  let processor: SpanProcessor | undefined;
  if (opts.exporter) processor = new SimpleSpanProcessor(opts.exporter);
  else if (otlpConfigured(env)) processor = new BatchSpanProcessor(new OTLPTraceExporter());
  if (!processor) return false;
  // Several services in one process (tests) share the first provider.
  if (provider) return true;
  provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? serviceName }),
    spanProcessors: [processor],
  });
  provider.register();
  return true;
}

/** Flushes and stops tracing (on shutdown). */
export async function shutdownTracing(): Promise<void> {
  await provider?.shutdown().catch(() => undefined);
  provider = undefined;
}

/** The W3C `traceparent` of a context (the active one by default), or undefined when not sampled/off. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent;
}

/** A context continuing a stored `traceparent`. */
export function contextFrom(traceparent?: string): Context {
  if (!traceparent) return context.active();
  return propagation.extract(context.active(), { traceparent });
}

/** A span link to a stored `traceparent` (e.g. from a scheduling cycle to each job it placed). */
export function linkTo(traceparent?: string): Link[] {
  if (!traceparent) return [];
  const sc = trace.getSpanContext(contextFrom(traceparent));
  return sc ? [{ context: sc }] : [];
}

/** Runs `fn` in a span that is a child of `parent` (a traceparent or the active context), recording errors. */
export async function inSpan<T>(
  name: string,
  opts: { parent?: string; attributes?: Record<string, string | number | boolean>; links?: Link[]; kind?: SpanKind },
  fn: (span: Span) => Promise<T> | T,
): Promise<T> {
  const tracer = trace.getTracer(TRACER);
  const ctx = opts.parent ? contextFrom(opts.parent) : context.active();
  return tracer.startActiveSpan(name, { attributes: opts.attributes, links: opts.links, kind: opts.kind ?? SpanKind.INTERNAL }, ctx, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

export { SpanKind };

/** Starts a span the caller ends: for spans that must exist before the work they name is written (their traceparent goes into it). */
export function startSpan(
  name: string,
  opts: { parent?: string; attributes?: Record<string, string | number | boolean>; links?: Link[] },
): { span: Span; traceparent?: string } {
  const parentCtx = opts.parent ? contextFrom(opts.parent) : context.active();
  const span = trace.getTracer(TRACER).startSpan(name, { attributes: opts.attributes, links: opts.links }, parentCtx);
  return { span, traceparent: traceparentOf(trace.setSpan(parentCtx, span)) };
}
