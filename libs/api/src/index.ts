export * from './errors';
export * from './quantity';
export * from './model';
export * from './ranges';
export * from './schemas';
export * from './views';
export * from './lifecycle';
export * from './workflow';
