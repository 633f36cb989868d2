/** Taskgate's version, reported by agents in Hello and by `taskgate --version`. */
export const VERSION = '0.1.0';
