/** This package's version (package.json's; a test keeps them equal). Sent in the user agent. */
export const VERSION = "0.2.0";
