// An S3-protocol server for the tests that checks what a real store checks: @20minutes/s3rver (npm, installed by
// `make install`), a maintained s3rver fork that verifies AWS Signature Version 4, for requests signed in headers and
// for presigned URLs (their X-Amz-Expires included). Run by tests/helpers/s3_server.py, never by hand:
//
//   node --openssl-legacy-provider tests/helpers/s3_server.js
//
// Settings come from the environment (S3_ADDRESS, S3_PORT (0: a free one), S3_DIRECTORY, S3_BUCKET,
// S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY); the server prints "listening ADDRESS PORT" once it accepts connections
// and exits when its standard input closes (so a test run that dies leaves no server behind). With S3_ALSO_LOOPBACK=1
// the same server also listens on a free port of 127.0.0.1 and prints "also 127.0.0.1 PORT" (Docker mode: the
// platform reaches the store on loopback, containers on the Docker network's address; a signature covers the Host
// header, so each side uses URLs signed for its own address).
//
// Two changes to the stock server, both to behave like a private bucket of a real store:
// * its built-in key pair (S3RVER/S3RVER) is revoked and the tests' pair is the only one it knows;
// * a request that carries no signature at all is refused with 403 AccessDenied (s3rver lets anonymous requests
//   through, as if every bucket were public).
// --openssl-legacy-provider: s3rver makes its ListObjectsV2 continuation tokens with DES, which Node's OpenSSL 3
// keeps in its legacy provider.
'use strict'

const http = require('node:http')
const S3rver = require('@20minutes/s3rver')
const { DUMMY_ACCOUNT } = require('@20minutes/s3rver/lib/models/account')
const S3Error = require('@20minutes/s3rver/lib/models/error')

const env = process.env
for (const name of ['S3_DIRECTORY', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY']) {
  if (!env[name]) {
    console.error(`s3_server.js: ${name} is not set`)
    process.exit(2)
  }
}

DUMMY_ACCOUNT.revokeAccessKey('S3RVER')
DUMMY_ACCOUNT.createKeyPair(env.S3_ACCESS_KEY_ID, env.S3_SECRET_ACCESS_KEY)

const server = new S3rver({
  address: env.S3_ADDRESS || '127.0.0.1',
  port: Number(env.S3_PORT || 0),
  directory: env.S3_DIRECTORY,
  silent: true,
  configureBuckets: [{ name: env.S3_BUCKET, configs: [] }],
})

function signed(ctx) {
  return (
    'authorization' in ctx.headers ||
    'X-Amz-Algorithm' in ctx.query ||
    'Signature' in ctx.query
  )
}

// First in the chain: an unsigned request never reaches a bucket.
server.middleware.unshift(async (ctx, next) => {
  if (!signed(ctx)) {
    throw new S3Error('AccessDenied', 'Access Denied')
  }
  return next()
})

server.run().then(({ address, port }) => {
  console.log(`listening ${address} ${port}`)
  if (env.S3_ALSO_LOOPBACK === '1') {
    const loopback = http.createServer(server.callback())
    loopback.listen(0, '127.0.0.1', () => console.log(`also 127.0.0.1 ${loopback.address().port}`))
  }
})

process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
process.stdin.on('close', () => process.exit(0))
