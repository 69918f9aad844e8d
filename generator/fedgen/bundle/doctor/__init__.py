"""Connectivity doctor for one NVFlare startup kit: can this machine reach and authenticate the server?

fedgen ships this package's files verbatim as the folder `doctor/` in every bundle; the bundle's `doctor.sh`
runs it (`python3 KIT/doctor`) with the federation's facts (NVFlare version, ports, the server address the
bundle was made for). It imports only the standard library and reads only the kit, so it runs with any
python3 >= 3.9 on the site's machine, before NVFlare is installed. It must never import fedgen, nvflare or a
third-party package, and its modules import each other only relatively (the folder is the package `doctor`
in a bundle, `fedgen.bundle.doctor` here).

One line per check, in this order: the installed NVFlare against the federation's version; the local clock
against the validity of the kit's certificates; DNS of the name the kit dials; TCP to the fl and admin ports
(`checks.py`); a TLS handshake presenting the kit's certificate, verifying the server's against the kit's
rootCA.pem and the expected identity (NVFlare checks the chain and that the CN is the server's name, not the
SAN), then whether the server accepts the kit's certificate (it answers the HTTP/2 preface gRPC speaks)
(`tls.py`); the clock against the server's certificate once seen. Then the egress firewall rule the site
needs, and one verdict line: `OK`, or `FAIL: <cause> - <what to do>` for the first failure (`run.py`).
Exit 0 (OK, warnings allowed), 1 (FAIL), 2 (bad usage).
"""
