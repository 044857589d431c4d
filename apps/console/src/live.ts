/**
 * Hooks the workflow, queues and nodes pages follow the API's server-sent events with: one
 * stream's parsed events, and a reload counter that a burst of events moves once.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiFailure, readEvents } from './api';

/** Where a followed stream stands. */
export interface StreamState {
  /** An event has come since the stream last opened. */
  live: boolean;
  /** The server ended the stream (its record reached a terminal phase). */
  ended: boolean;
  /** The API refused the stream for good (403, 404): it is not reopened. */
  refused?: ApiFailure;
}

/**
 * Follows the event stream at `path` (none while undefined), calling `onEvent` with each event's
 * parsed `data`. A broken stream is reopened after 2 s from its last event; one the server ends,
 * or refuses with a 4xx other than 429, is not.
 */
export function useEvents<T>(path: string | undefined, onEvent: (data: T) => void): StreamState {
  const [state, setState] = useState<StreamState>({ live: false, ended: false });
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    if (!path) return;
    const ctl = new AbortController();
    let last: string | undefined;
    setState({ live: false, ended: false });
    const follow = async () => {
      while (!ctl.signal.aborted) {
        try {
          await readEvents(
            path,
            (e) => {
              last = e.id;
              setState((s) => (s.live ? s : { ...s, live: true }));
              handler.current(JSON.parse(e.data) as T);
            },
            ctl.signal,
            last,
          );
          if (!ctl.signal.aborted) setState({ live: false, ended: true });
          return;
        } catch (e) {
          if (ctl.signal.aborted) return;
          if (e instanceof ApiFailure && e.status >= 400 && e.status < 500 && e.status !== 429) return setState({ live: false, ended: false, refused: e });
          setState((s) => ({ ...s, live: false }));
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
    };
    void follow();
    return () => ctl.abort();
  }, [path]);
  return state;
}

/**
 * A counter to reload by, and the function that moves it: calls within `ms` of the first one
 * move it once, `ms` later (an operator's stream can carry ten events a second).
 */
export function useReloads(ms = 300): [number, () => void] {
  const [count, setCount] = useState(0);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const bump = useRef(() => {
    if (timer.current !== undefined) return;
    timer.current = setTimeout(() => {
      timer.current = undefined;
      setCount((n) => n + 1);
    }, ms);
  });
  useEffect(() => () => clearTimeout(timer.current), []);
  return [count, bump.current];
}
