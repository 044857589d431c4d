module.exports = require('../../jest.preset.js')('executor', __dirname);
