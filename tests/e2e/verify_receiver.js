// A webhook receiver that checks X-CyberCage-Signature exactly as the product document tells
// customers to: JSON.parse the body, then the document's verifyWebhook, copied verbatim.
//
// Usage: node verify_receiver.js <port> <secret>   (port 0 picks a free one)
// Prints {"listening": <port>} once, then one JSON line per request. Answers 200 if the
// signature verifies, else 401. No npm dependencies: only the http and crypto modules.
'use strict';

const http = require('http');

// --- From the product document, verbatim ---
const crypto = require('crypto');
function verifyWebhook(payload, signature, secret) {
const hmac = crypto.createHmac('sha256', secret);
hmac.update(JSON.stringify(payload));
const expectedSignature = `sha256=${hmac.digest('hex')}`;
return crypto.timingSafeEqual(
Buffer.from(signature),
Buffer.from(expectedSignature)
);
}
// --- End of the document's code ---

const port = Number(process.argv[2] || 0);
const secret = process.argv[3];
if (secret === undefined) {
  process.stderr.write('usage: node verify_receiver.js <port> <secret>\n');
  process.exit(2);
}

function check(body, signature) {
  if (typeof signature !== 'string') return { valid: false, reason: 'no signature header' };
  let payload;
  try {
    payload = JSON.parse(body);
  } catch (err) {
    return { valid: false, reason: `body is not JSON: ${err.message}` };
  }
  // timingSafeEqual throws when the lengths differ: that is a wrong signature, not a crash.
  const expectedLength = Buffer.byteLength(`sha256=${'0'.repeat(64)}`);
  if (Buffer.byteLength(signature) !== expectedLength) return { valid: false, reason: 'signature length' };
  return { valid: verifyWebhook(payload, signature, secret), reason: '' };
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const { valid, reason } = check(body, req.headers['x-cybercage-signature']);
    process.stdout.write(
      JSON.stringify({
        delivery_id: req.headers['x-cybercage-delivery-id'] || null,
        event: req.headers['x-cybercage-event'] || null,
        valid,
        reason,
        method: req.method,
        url: req.url,
        headers: req.headers,
        body,
      }) + '\n'
    );
    res.writeHead(valid ? 200 : 401, { 'Content-Type': 'text/plain' });
    res.end(valid ? 'ok' : 'invalid signature');
  });
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n');
});
