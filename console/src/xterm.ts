/**
 * xterm.js and its fit addon, with its stylesheet: loaded on demand (a
 * chunk of its own) by the terminal on the task page.
 */
import '@xterm/xterm/css/xterm.css';

export { FitAddon } from '@xterm/addon-fit';
export { Terminal } from '@xterm/xterm';
