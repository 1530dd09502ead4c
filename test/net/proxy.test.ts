/**
 * Proxies as uv and docker take them from the environment: the NO_PROXY rules and the variables'
 * precedence as tables, then real requests through a real forward proxy on 127.0.0.1 (absolute
 * form for http://, a CONNECT tunnel with TLS inside for https://) to origins whose names only
 * the proxy resolves.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { UserError } from '../../src/errors.js';
import { bypassesProxy, parseNoProxy, proxyFor, proxySettings, redactUrl } from '../../src/net/proxy.js';
import { HttpStatusError, NetworkError, request, statusError } from '../../src/net/request.js';
import { readBody } from '../../src/net/transport.js';
import { startForwardProxy, type ForwardProxy } from '../harness/forward-proxy.js';
import { selfSignedCertificate, type TestCertificate } from '../harness/tls.js';

test('NO_PROXY: *, domains and their subdomains, IPs, CIDR blocks, ports; loopback always direct', () => {
  const rules = parseNoProxy(' internal.example , .corp.example,*.wild.example, 10.1.2.3, 192.168.0.0/16, fd00::/8, [2001:db8::1]:8443, registry.example:5000, ,bad/entry, 300.1.1.1/40');
  const cases: [string, boolean][] = [
    ['https://internal.example/simple', true],
    ['https://pkgs.internal.example/simple', true],
    ['https://notinternal.example/', false],
    ['https://internal.example.org/', false],
    ['https://corp.example/', true],
    ['https://a.b.corp.example/', true],
    ['https://wild.example/', true],
    ['https://x.wild.example/', true],
    ['http://10.1.2.3/', true],
    ['http://10.1.2.4/', false],
    ['http://192.168.40.7:8080/', true],
    ['http://192.169.0.1/', false],
    ['http://[fd12::5]/', true],
    ['https://[2001:db8::1]:8443/', true],
    ['https://[2001:db8::1]/', false],
    ['https://registry.example:5000/v2/', true],
    ['https://registry.example/v2/', false],
    ['https://INTERNAL.EXAMPLE./', true],
    ['http://127.0.0.1:5000/', true],
    ['http://127.9.9.9/', true],
    ['http://[::1]:5000/', true],
    ['http://localhost:8080/', true],
    ['http://registry.localhost/', true],
    ['https://pypi.org/simple/', false],
  ];
  for (const [url, direct] of cases) assert.equal(bypassesProxy(new URL(url), rules), direct, url);
  assert.equal(bypassesProxy(new URL('https://anything.example/'), parseNoProxy('*')), true);
  assert.equal(bypassesProxy(new URL('https://anything.example/'), parseNoProxy('')), false);
  // A domain rule does not match an IP, nor an IP rule a name.
  assert.equal(bypassesProxy(new URL('http://10.0.0.1/'), parseNoProxy('10.0.0.1.nip.io')), false);
});

test('which variable wins: the scheme\'s own (upper case first), then ALL_PROXY; HTTP_PROXY not in CGI', () => {
  const table: [NodeJS.ProcessEnv, string, string | undefined][] = [
    [{ HTTPS_PROXY: 'http://upper:3128', https_proxy: 'http://lower:3128' }, 'https://pypi.org/', 'http://upper:3128/'],
    [{ https_proxy: 'http://lower:3128' }, 'https://pypi.org/', 'http://lower:3128/'],
    [{ HTTPS_PROXY: 'http://secure:3128', HTTP_PROXY: 'http://plain:3128' }, 'http://deb.debian.org/', 'http://plain:3128/'],
    [{ HTTPS_PROXY: 'http://secure:3128' }, 'http://deb.debian.org/', undefined],
    [{ ALL_PROXY: 'http://all:3128' }, 'http://deb.debian.org/', 'http://all:3128/'],
    [{ all_proxy: 'http://all:3128', HTTPS_PROXY: 'http://secure:3128' }, 'https://pypi.org/', 'http://secure:3128/'],
    [{ HTTP_PROXY: 'http://injected:3128', REQUEST_METHOD: 'GET' }, 'http://deb.debian.org/', undefined],
    [{ http_proxy: 'http://lower:3128', HTTP_PROXY: 'http://injected:3128', REQUEST_METHOD: 'GET' }, 'http://deb.debian.org/', 'http://lower:3128/'],
    [{ HTTPS_PROXY: 'proxy.corp:8080' }, 'https://pypi.org/', 'http://proxy.corp:8080/'],
    [{ HTTPS_PROXY: 'http://proxy.corp:8080', NO_PROXY: 'pypi.org' }, 'https://files.pypi.org/', undefined],
    [{ HTTPS_PROXY: 'http://proxy.corp:8080', no_proxy: 'pypi.org' }, 'https://pypi.org/', undefined],
    [{ HTTPS_PROXY: 'http://proxy.corp:8080' }, 'https://127.0.0.1:5000/', undefined],
    [{}, 'https://pypi.org/', undefined],
  ];
  for (const [env, url, proxy] of table) assert.equal(proxyFor(new URL(url), env)?.href, proxy, `${JSON.stringify(env)} ${url}`);
  assert.throws(() => proxySettings({ HTTPS_PROXY: 'socks5://user:secret@proxy:1080' }), (error: unknown) => {
    assert.ok(error instanceof UserError);
    assert.equal(error.message, 'HTTPS_PROXY=socks5://***@proxy:1080: uvimage speaks to http:// and https:// proxies only');
    return true;
  });
  assert.throws(() => proxySettings({ http_proxy: 'http://user:secret@[bad' }), /^UserError: http_proxy is not a proxy URL: "http:\/\/\*\*\*@\[bad"$/);
  assert.equal(redactUrl('http://user:secret@proxy:3128/'), 'http://***@proxy:3128/');
});

describe('through a real forward proxy', () => {
  let certificate: TestCertificate;
  let plain: Server;
  let secure: Server;
  let plainPort: number;
  let securePort: number;
  let proxy: ForwardProxy;
  let guarded: ForwardProxy;
  const seen: { server: string; url: string; headers: IncomingHttpHeaders }[] = [];

  before(async () => {
    certificate = await selfSignedCertificate(['secure.test']);
    plain = createHttpServer((req, res) => {
      seen.push({ server: 'plain', url: req.url ?? '', headers: req.headers });
      res.end(`plain ${req.url}`);
    });
    secure = createHttpsServer({ key: certificate.key, cert: certificate.cert }, (req, res) => {
      seen.push({ server: 'secure', url: req.url ?? '', headers: req.headers });
      res.end(`secure ${req.url}`);
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => secure.listen(0, '127.0.0.1', resolve));
    plainPort = (plain.address() as AddressInfo).port;
    securePort = (secure.address() as AddressInfo).port;
    const names = { 'plain.test': '127.0.0.1', 'secure.test': '127.0.0.1' };
    proxy = await startForwardProxy({ names });
    guarded = await startForwardProxy({ names, credentials: { username: 'proxyuser', password: 'proxy pass' } });
  });

  after(async () => {
    await proxy.stop();
    await guarded.stop();
    plain.closeAllConnections();
    secure.closeAllConnections();
    await new Promise((resolve) => plain.close(resolve));
    await new Promise((resolve) => secure.close(resolve));
    await certificate.cleanup();
  });

  test('HTTP_PROXY: an http:// URL is requested from the proxy in absolute form', async () => {
    proxy.log.length = 0;
    seen.length = 0;
    const url = `http://plain.test:${plainPort}/simple/pkg/`;
    const response = await request({ url, env: { HTTP_PROXY: proxy.url }, authorization: 'Bearer index-token' });
    assert.equal((await readBody(response, 1000)).toString(), 'plain /simple/pkg/');
    assert.deepEqual(proxy.log.map((entry) => [entry.method, entry.target, entry.status]), [['GET', url, 200]]);
    assert.equal(seen[0]!.headers.host, `plain.test:${plainPort}`);
    assert.equal(seen[0]!.headers.authorization, 'Bearer index-token');
  });

  test('HTTPS_PROXY: an https:// URL goes through a CONNECT tunnel, TLS checked end to end (SSL_CERT_FILE)', async () => {
    proxy.log.length = 0;
    seen.length = 0;
    const url = `https://secure.test:${securePort}/dists/trixie/InRelease`;
    const env = { HTTPS_PROXY: proxy.url, SSL_CERT_FILE: certificate.certFile };
    const response = await request({ url, env, authorization: 'Bearer inside-the-tunnel' });
    assert.equal((await readBody(response, 1000)).toString(), 'secure /dists/trixie/InRelease');
    assert.deepEqual(proxy.log.map((entry) => [entry.method, entry.target, entry.authorization]), [['CONNECT', `secure.test:${securePort}`, false]]);
    assert.deepEqual(seen.map((entry) => [entry.server, entry.headers.authorization]), [['secure', 'Bearer inside-the-tunnel']]);
    // A certificate the client does not trust fails, through the tunnel too.
    await assert.rejects(request({ url, env: { HTTPS_PROXY: proxy.url }, retry: false }), (error: unknown) => {
      assert.ok(error instanceof NetworkError);
      assert.match(error.message, new RegExp(`^GET ${url.replace(/[.*?]/g, '\\$&')}: .*certificate.* \\(through proxy ${proxy.url}/\\)$`));
      return true;
    });
  });

  test('NO_PROXY sends a name direct: the proxy sees nothing, and the name (known only to the proxy) does not resolve', async () => {
    proxy.log.length = 0;
    await assert.rejects(
      request({ url: `http://plain.test:${plainPort}/`, env: { HTTP_PROXY: proxy.url, NO_PROXY: '.test' }, retry: false }),
      (error: unknown) => {
        assert.ok(error instanceof NetworkError);
        assert.match(error.code ?? '', /^(ENOTFOUND|EAI_AGAIN)$/);
        assert.doesNotMatch(error.message, /through proxy/);
        return true;
      },
    );
    assert.deepEqual(proxy.log, []);
  });

  test('credentials in the proxy URL reach the proxy (CONNECT and absolute form); without them, one line with a hint', async () => {
    guarded.log.length = 0;
    const withCredentials = new URL(guarded.url);
    withCredentials.username = 'proxyuser';
    withCredentials.password = 'proxy pass';
    const env = { HTTPS_PROXY: withCredentials.href, HTTP_PROXY: withCredentials.href, SSL_CERT_FILE: certificate.certFile };
    await readBody(await request({ url: `https://secure.test:${securePort}/a`, env }), 1000);
    await readBody(await request({ url: `http://plain.test:${plainPort}/b`, env }), 1000);
    const expected = `Basic ${Buffer.from('proxyuser:proxy pass').toString('base64')}`;
    assert.deepEqual(guarded.log.map((entry) => [entry.method, entry.status, entry.proxyAuthorization]), [
      ['CONNECT', 200, expected],
      ['GET', 200, expected],
    ]);
    const response = await request({ url: `http://plain.test:${plainPort}/c`, env: { HTTP_PROXY: guarded.url } });
    assert.equal(response.status, 407);
    const error = await statusError(response);
    assert.ok(error instanceof HttpStatusError);
    assert.equal(error.message, `GET http://plain.test:${plainPort}/c: HTTP 407 (the proxy wants credentials: http://user:password@proxy:port in HTTPS_PROXY/HTTP_PROXY) (through proxy ${guarded.url}/)`);
    // A tunnel the proxy refuses: its answer is the status, and the message says whose it is.
    const refused = await request({ url: `https://secure.test:${securePort}/d`, env: { HTTPS_PROXY: guarded.url } });
    assert.equal(refused.status, 407);
    assert.match((await statusError(refused)).message, new RegExp(`^GET https://secure\\.test:${securePort}/d: HTTP 407 .*\\(through proxy ${guarded.url}/\\)$`));
  });
});
