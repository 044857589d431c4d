export * from './snapshot';
export * from './first-fit';
export * from './admit';
