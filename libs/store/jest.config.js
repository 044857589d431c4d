module.exports = require('../../jest.preset.js')('store', __dirname);
