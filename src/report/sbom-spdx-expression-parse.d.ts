// spdx-expression-parse ships no types: it throws on what is not an SPDX license expression.
declare module 'spdx-expression-parse' {
  export default function parse(expression: string): unknown;
}
