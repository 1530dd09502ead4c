/** uvimage's version: what --version prints and its SBOMs name as their tool. */
export const uvimageVersion = '0.1.0';
