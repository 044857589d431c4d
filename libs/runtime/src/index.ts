export * from './config';
export * from './errors.filter';
export * from './service';
