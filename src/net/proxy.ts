/**
 * Which proxy a request goes through, from the environment as uv and docker read it:
 *
 *   HTTPS_PROXY / https_proxy   for https:// URLs (tunnelled with CONNECT)
 *   HTTP_PROXY / http_proxy     for http:// URLs (absolute-form requests); HTTP_PROXY is
 *                               ignored when REQUEST_METHOD is set, as in a CGI script, where a
 *                               client's `Proxy:` header arrives as HTTP_PROXY (httpoxy)
 *   ALL_PROXY / all_proxy       for either, when its own variable is unset (curl's rule)
 *   NO_PROXY / no_proxy         comma-separated exceptions: `*` (everything), a domain (itself
 *                               and every subdomain; a leading `.` or `*.` changes nothing), an
 *                               IP address, a CIDR block, each optionally `:port` (only that
 *                               port; `[v6]:port` for IPv6)
 *
 * The upper-case name wins when both are set, as in reqwest (uv) and Go's net/http/httpproxy
 * (docker). A proxy without a scheme is http://. Loopback hosts (localhost, 127.0.0.0/8, ::1)
 * never go through a proxy, as in Go: a proxy's loopback is not ours.
 *
 * A proxy URL may carry credentials (http://user:password@proxy:3128): they go to the proxy as
 * Proxy-Authorization and are never printed.
 */
import { BlockList, isIP } from 'node:net';
import { UserError } from '../errors.js';

export interface ProxySettings {
  http?: URL;
  https?: URL;
  noProxy: NoProxyRule[];
}

export type NoProxyRule =
  | { kind: 'all' }
  | { kind: 'domain'; domain: string; port?: number }
  | { kind: 'addresses'; list: BlockList; port?: number };

const settingsCache = new Map<string, ProxySettings>();

/** The proxy settings of an environment (cached by the variables' values). */
export function proxySettings(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const names = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy', 'NO_PROXY', 'no_proxy', 'REQUEST_METHOD'];
  const key = names.map((name) => env[name] ?? '\0').join('\n');
  let settings = settingsCache.get(key);
  if (!settings) {
    settings = readProxySettings(env);
    settingsCache.set(key, settings);
  }
  return settings;
}

function readProxySettings(env: NodeJS.ProcessEnv): ProxySettings {
  const pick = (...names: string[]): [string, string] | undefined => {
    for (const name of names) {
      const value = env[name]?.trim();
      if (value) return [name, value];
    }
    return undefined;
  };
  const all = pick('ALL_PROXY', 'all_proxy');
  const https = pick('HTTPS_PROXY', 'https_proxy') ?? all;
  const http = (env.REQUEST_METHOD ? pick('http_proxy') : pick('HTTP_PROXY', 'http_proxy')) ?? all;
  const settings: ProxySettings = { noProxy: parseNoProxy(pick('NO_PROXY', 'no_proxy')?.[1] ?? '') };
  if (https) settings.https = parseProxyUrl(...https);
  if (http) settings.http = parseProxyUrl(...http);
  return settings;
}

function parseProxyUrl(name: string, value: string): URL {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UserError(`${name} is not a proxy URL: ${JSON.stringify(redactedProxyText(value))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UserError(`${name}=${redactUrl(url)}: uvimage speaks to http:// and https:// proxies only`);
  }
  return url;
}

/** A proxy value that did not parse, without what looks like credentials. */
function redactedProxyText(value: string): string {
  return value.replace(/\/\/[^/@]*@/, '//***@');
}

/** A URL fit for messages: its credentials replaced by `***`. */
export function redactUrl(url: URL | string): string {
  let parsed: URL;
  try {
    parsed = new URL(String(url));
  } catch {
    return redactedProxyText(String(url));
  }
  if (!parsed.username && !parsed.password) return parsed.href;
  parsed.username = '***';
  parsed.password = '';
  return parsed.href;
}

/** Parses a NO_PROXY value into rules; entries that mean nothing are skipped, as curl and Go do. */
export function parseNoProxy(text: string): NoProxyRule[] {
  const rules: NoProxyRule[] = [];
  for (const raw of text.split(',')) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') {
      rules.push({ kind: 'all' });
      continue;
    }
    let port: number | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (bracketed) {
      entry = bracketed[1]!;
      if (bracketed[2]) port = Number(bracketed[2]);
    } else {
      const withPort = /^([^:]+):(\d+)$/.exec(entry);
      if (withPort) {
        entry = withPort[1]!;
        port = Number(withPort[2]);
      }
    }
    const addresses = addressRule(entry);
    if (addresses) {
      rules.push(port === undefined ? { kind: 'addresses', list: addresses } : { kind: 'addresses', list: addresses, port });
      continue;
    }
    const domain = entry.replace(/^\*?\.+/, '').replace(/\.$/, '');
    if (!domain || !/^[a-z0-9_.-]+$/.test(domain)) continue;
    rules.push(port === undefined ? { kind: 'domain', domain } : { kind: 'domain', domain, port });
  }
  return rules;
}

/** An IP address or CIDR block as a BlockList, or undefined when the entry is neither. */
function addressRule(entry: string): BlockList | undefined {
  const [address, prefixText, ...rest] = entry.split('/');
  const family = isIP(address ?? '');
  if (!family || rest.length > 0) return undefined;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const list = new BlockList();
  if (prefixText === undefined) {
    list.addAddress(address!, type);
    return list;
  }
  const prefix = /^\d+$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= (family === 4 ? 32 : 128))) return undefined;
  list.addSubnet(address!, prefix, type);
  return list;
}

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/** The URL's port, or its scheme's default. */
function portOf(url: URL): number {
  if (url.port) return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

/** Whether NO_PROXY (or the loopback rule) sends this URL direct. */
export function bypassesProxy(url: URL, rules: readonly NoProxyRule[]): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  const family = isIP(host);
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (family ? loopback.check(host, type) : host === 'localhost' || host.endsWith('.localhost')) return true;
  const port = portOf(url);
  return rules.some((rule) => {
    if (rule.kind === 'all') return true;
    if (rule.port !== undefined && rule.port !== port) return false;
    if (rule.kind === 'addresses') return family !== 0 && rule.list.check(host, type);
    return family === 0 && (host === rule.domain || host.endsWith(`.${rule.domain}`));
  });
}

/** The proxy for a URL, or undefined to connect directly. */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  const settings = proxySettings(env);
  const proxy = url.protocol === 'https:' ? settings.https : url.protocol === 'http:' ? settings.http : undefined;
  if (!proxy || bypassesProxy(url, settings.noProxy)) return undefined;
  return proxy;
}
