export * from './config';
export * from './errors.filter';
export * from './service';
export * from './rpc-server';
export * from './service-credential';
export * from './env';
export * from './clock';
export * from './fake-clock';
