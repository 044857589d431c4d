export * from './keys';
export * from './etcd';
export {
  CasConflictError,
  FencedError,
  IdempotencyConflictError,
  IdempotentJobGoneError,
  OutcomeUnknownError,
  StoreError,
  StoreUnavailableError,
} from './errors';
export * from './chunks';
export * from './group-commit';
export * from './leader';
export * from './revisions';
export * from './jobs';
export * from './groups';
export * from './etcd-member';
export * from './throttle';
export * from './retention';
export * from './workflows';
export * from './nodes';
export * from './consolidation';
export * from './lease-fence';
export * from './versioned';
export * from './queues';
export * from './semaphores';
export * from './cordons';
export * from './cluster';
export * from './usage';
export * from './members';
export * from './archive';
export * from './schedules';
export * from './workflow-templates';
