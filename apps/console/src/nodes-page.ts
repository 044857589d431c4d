/**
 * The nodes page (operators): each node's capacity and allocation as bars, its GPU devices as
 * small squares (free, partly used by fractional tasks, full), whether it is cordoned, draining
 * or quarantined and why; cordon, drain and uncordon after a confirmation. Live: the listing
 * comes from `GET /v1/nodes/events` at each change of a node, its allocation or its cordon. A
 * tenant's token is refused (403): the page says it is for operators only.
 */
import type { NodeView } from '@batchapi/api';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiFailure, call } from './api';
import { amount, deviceFill, resourceOrder } from './bars';
import { html } from './html';
import { MeterBar } from './meter-bar';
import { useEvents } from './live';

type Action = { kind: 'cordon' | 'drain' | 'uncordon'; node: string };

function Usage({ n }: { n: NodeView }) {
  return html`${resourceOrder(Object.keys(n.capacity))
    .filter((r) => r === 'cpu' || r === 'memory' || r === 'gpu')
    .map((r) => {
      const cap = amount(n.capacity[r]);
      const used = amount(n.allocated[r]);
      const label = `${r === 'cpu' ? 'CPU' : r === 'gpu' ? 'GPU' : 'Memory'}: ${n.allocated[r] ?? 0} of ${n.capacity[r]} allocated`;
      return html`<${MeterBar}
        resource=${r}
        name=${r}
        label=${label}
        within=${cap ? Math.min(1, used / cap) : 0}
        text=${`${n.allocated[r] ?? 0} / ${n.capacity[r]}`}
        small
      />`;
    })}`;
}

function Devices({ n }: { n: NodeView }) {
  if (n.gpuDevices.length === 0) return html`<span class="muted">none</span>`;
  return html`<ul class="devices" aria-label=${`GPUs of ${n.name}`}>
    ${n.gpuDevices.map((d) => {
      const fill = deviceFill(d.milliUsed);
      const label = `GPU ${d.index} (${d.model}): ${fill === 'free' ? 'free' : fill === 'full' ? 'full' : `${d.milliUsed / 10} % used by fractional tasks`}`;
      return html`<li class=${`device ${fill}`} data-fill=${fill} title=${label} aria-label=${label}></li>`;
    })}
  </ul>`;
}

function Status({ n }: { n: NodeView }) {
  const c = n.cordon;
  if (n.draining)
    return html`<span class="state warn">Executor stopping</span><br /><small>until ${new Date(n.draining.deadline).toLocaleTimeString()}</small>`;
  if (!c) return html`<span class="state ok">Ready</span>`;
  const what = c.quarantine ? 'Quarantined' : c.drainDeadline ? 'Draining' : 'Cordoned';
  const why = [
    c.reason,
    c.quarantine ? ` (${c.quarantine.cause}, ${c.quarantine.failures} failures)` : '',
    ` — by ${c.by}`,
    c.drainDeadline ? `, tasks stop at ${new Date(c.drainDeadline).toLocaleTimeString()}` : '',
  ].join('');
  return html`<span class="state danger">${what}</span><br /><small>${why}</small>`;
}

export function NodesPage() {
  const [nodes, setNodes] = useState<NodeView[]>();
  const [action, setAction] = useState<Action>();
  const [reason, setReason] = useState('');
  const [deadline, setDeadline] = useState('300');
  const [error, setError] = useState<string>();
  const dialog = useRef<HTMLDialogElement>(null);
  const stream = useEvents<{ nodes: NodeView[] }>('/v1/nodes/events', (v) => setNodes(v.nodes));

  useEffect(() => {
    if (action) dialog.current?.showModal();
    else dialog.current?.close();
  }, [action]);

  if (stream.refused?.status === 403)
    return html`<main>
      <h1>Nodes</h1>
      <p role="alert" data-testid="operators-only">
        Nodes are shown to operators only: your token is a tenant's. Ask an operator, or sign in with an operator token.
      </p>
    </main>`;

  const open = (kind: Action['kind'], node: string) => {
    setReason('');
    setAction({ kind, node });
  };
  const confirm = async (e: Event) => {
    e.preventDefault();
    if (!action) return;
    const path = `/v1/nodes/${encodeURIComponent(action.node)}/${action.kind === 'drain' ? 'drain' : 'cordon'}`;
    try {
      if (action.kind === 'uncordon') await call('DELETE', path);
      else await call('POST', path, action.kind === 'drain' ? { reason, deadlineSeconds: Number(deadline) } : { reason });
      setError(undefined);
    } catch (err) {
      setError(err instanceof ApiFailure ? `${err.code}: ${err.message}` : String(err));
    }
    setAction(undefined);
  };

  return html`<main aria-busy=${nodes ? 'false' : 'true'}>
    <h1>Nodes</h1>
    <p class="live" aria-live="polite">${stream.live ? 'Live: updates as nodes and their allocations change.' : 'Connecting to live updates…'}</p>
    <p class="legend">
      GPUs: <span class="device free" aria-hidden="true"></span> free <span class="device partial" aria-hidden="true"></span> partly used
      <span class="device full" aria-hidden="true"></span> full
    </p>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <table>
      <caption class="visually-hidden">
        Nodes
      </caption>
      <thead>
        <tr>
          <th scope="col">Node</th>
          <th scope="col">State</th>
          <th scope="col">Allocated / capacity</th>
          <th scope="col">GPUs</th>
          <th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        ${(nodes ?? []).map(
          (n) =>
            html`<tr data-node=${n.name}>
              <td><strong>${n.name}</strong>${n.isolation ? html`<br /><small>isolation: ${n.isolation.kind}</small>` : ''}</td>
              <td><${Status} n=${n} /></td>
              <td><${Usage} n=${n} /></td>
              <td><${Devices} n=${n} /></td>
              <td>
                <div class="actions">
                  ${
                    n.cordon
                      ? html`<button type="button" onClick=${() => open('uncordon', n.name)} aria-label=${`Uncordon ${n.name}`}>Uncordon</button>`
                      : html`<button type="button" onClick=${() => open('cordon', n.name)} aria-label=${`Cordon ${n.name}`}>Cordon</button>`
                  }
                  ${!n.cordon?.drainDeadline && html`<button type="button" class="danger" onClick=${() => open('drain', n.name)} aria-label=${`Drain ${n.name}`}>Drain</button>`}
                </div>
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${nodes && nodes.length === 0 && html`<p>No nodes are registered.</p>`}
    <dialog ref=${dialog} aria-labelledby="node-action-title" onClose=${() => setAction(undefined)}>
      ${
        action &&
        html`<form onSubmit=${(e: Event) => void confirm(e)}>
          <h2 id="node-action-title">
            ${action.kind === 'uncordon' ? `Uncordon ${action.node}?` : action.kind === 'drain' ? `Drain ${action.node}?` : `Cordon ${action.node}?`}
          </h2>
          <p>
            ${
              action.kind === 'uncordon'
                ? 'The node takes new work again (a quarantine is lifted too).'
                : action.kind === 'drain'
                  ? 'No new work; its running tasks stop at the deadline and are requeued elsewhere.'
                  : 'No new work goes to the node; its running tasks go on.'
            }
          </p>
          ${
            action.kind !== 'uncordon' &&
            html`<label for="node-reason"
              >Reason <input id="node-reason" required value=${reason} onInput=${(e: Event) => setReason((e.target as HTMLInputElement).value)}
            /></label>`
          }
          ${
            action.kind === 'drain' &&
            html`<label for="node-deadline"
              >Deadline (seconds)
              <input
                id="node-deadline"
                type="number"
                min="1"
                required
                value=${deadline}
                onInput=${(e: Event) => setDeadline((e.target as HTMLInputElement).value)}
            /></label>`
          }
          <div class="toolbar">
            <button type="submit" class="danger">
              ${action.kind === 'uncordon' ? 'Uncordon the node' : action.kind === 'drain' ? 'Drain the node' : 'Cordon the node'}
            </button>
            <button type="button" onClick=${() => setAction(undefined)}>Keep it as it is</button>
          </div>
        </form>`
      }
    </dialog>
  </main>`;
}
