"""A TLS-inspecting middlebox for the connectivity doctor's test: it terminates TLS with its own certificate
and relays what it decrypted over a new TLS connection to the real server, as an inspection proxy does.

    python tls_proxy.py LISTEN_HOST LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT CERT_PEM KEY_PEM

Prints "listening" once it accepts connections; runs until killed.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(conn: socket.socket, terminate: ssl.SSLContext, upstream: tuple[str, int]) -> None:
    originate = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    originate.check_hostname = False
    originate.verify_mode = ssl.CERT_NONE
    try:
        client = terminate.wrap_socket(conn, server_side=True)
        server = originate.wrap_socket(socket.create_connection(upstream, timeout=5))
    except OSError:
        conn.close()
        return
    threading.Thread(target=_pump, args=(server, client), daemon=True).start()
    _pump(client, server)


def main(argv: list[str]) -> None:
    host, port, up_host, up_port, cert, key = argv
    terminate = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    terminate.load_cert_chain(cert, key)
    listener = socket.create_server((host, int(port)))
    print("listening", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn, terminate, (up_host, int(up_port))), daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1:])
