/** Local processes and loopback ports, shared by the local etcd and PostgreSQL launchers and by tests. */
export { ephemeralPortRange, freePort, freePortRange } from './ports';
export { stopProcess, type StopOptions } from './stop';
export { waitFor, waitUntil, type WaitOptions } from './wait';
