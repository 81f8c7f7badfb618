// A minimal gRPC server on node:http2 that records requests and answers what a test
// tells it to: the offline tests check exactly what the client sends and how it reads
// answers, deadlines and rich errors, without the Python service.

import http2 from "node:http2";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  path: string;
  headers: http2.IncomingHttpHeaders;
  /** The request message's bytes (the gRPC frame's payload). */
  message: Uint8Array;
}

export type Answer =
  | { message: Uint8Array }
  | { grpcStatus: number; grpcMessage: string; details?: Uint8Array }
  | "hang";

export interface FakeServer {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

function frame(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

export async function startFakeServer(answer: (request: RecordedRequest) => Answer): Promise<FakeServer> {
  const requests: RecordedRequest[] = [];
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  server.on("stream", (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => {}); // a client that gives up resets the stream
    stream.on("end", () => {
      const body = Buffer.concat(chunks);
      const request = { path: String(headers[":path"]), headers, message: new Uint8Array(body.subarray(5)) };
      requests.push(request);
      const reply = answer(request);
      if (reply === "hang" || stream.destroyed) return;
      if ("message" in reply) {
        stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(frame(reply.message));
      } else {
        // A trailers-only answer, as grpc servers send errors.
        const trailers: http2.OutgoingHttpHeaders = {
          ":status": 200,
          "content-type": "application/grpc+proto",
          "grpc-status": String(reply.grpcStatus),
          "grpc-message": encodeURIComponent(reply.grpcMessage),
        };
        if (reply.details) trailers["grpc-status-details-bin"] = Buffer.from(reply.details).toString("base64");
        stream.respond(trailers, { endStream: true });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  };
}
