module.exports = require('../../jest.preset.js')('admission', __dirname);
