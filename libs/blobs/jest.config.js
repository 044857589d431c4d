module.exports = require('../../jest.preset.js')('blobs', __dirname);
