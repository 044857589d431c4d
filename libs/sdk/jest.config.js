module.exports = require('../../jest.preset.js')('sdk', __dirname);
