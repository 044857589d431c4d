module.exports = require('../../jest.preset.js')('proc', __dirname);
