export * from './keys';
export * from './etcd';
export * from './leader';
export * from './jobs';
export * from './groups';
export * from './etcd-member';
export * from './workflows';
