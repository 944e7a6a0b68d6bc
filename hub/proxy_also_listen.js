// Preloaded into configurable-http-proxy (NODE_OPTIONS=--require, proxy_process.py) in Docker and Swarm modes: the
// proxy's public server also accepts connections on POLARTEP_PROXY_ALSO_LISTEN ("address:port", the platform
// network's gateway address and the public port), where containers reach it (their 127.0.0.1 is their own).
//
// The same http.Server handles both listeners (a connection accepted here is handed to it as its own), so routing,
// headers and X-Forwarded-For (the container's real address) are exactly those of the public listener; the REST API
// server (another port) is never exposed here. CHP can listen on one address only (--ip), hence this hook.
"use strict";
const http = require("http");
const net = require("net");

const also = process.env.POLARTEP_PROXY_ALSO_LISTEN || "";
const split = also.lastIndexOf(":");
const alsoHost = also.slice(0, split);
const alsoPort = Number(also.slice(split + 1));

if (also && split > 0 && alsoPort > 0) {
  const listen = http.Server.prototype.listen;
  http.Server.prototype.listen = function (...args) {
    if (Number(args[0]) === alsoPort && !this.polartepAlsoListening) {
      this.polartepAlsoListening = true;
      const server = this;
      const extra = net.createServer((socket) => server.emit("connection", socket));
      extra.on("error", (error) => {
        console.error(`polartep: cannot also listen on ${also}: ${error.message}`);
        process.exit(1);
      });
      extra.listen(alsoPort, alsoHost, () => console.log(`polartep: proxy also listening on ${also}`));
    }
    return listen.apply(this, args);
  };
}
