complete -c cm-copy-data -l root -d 'The old host\'s root directory: the default plan\'s sources are below it' -r -F
complete -c cm-copy-data -l project-dir -d 'The Docker compose project directory: the default plan\'s targets are read from its compose file' -r -F
complete -c cm-copy-data -l layout -d 'Copy into the guide\'s layout (data/chatmail, data/chatmail-dkimkeys, data/chatmail-acme below --project-dir) without reading a compose file' -r -f -a "guide\t''"
complete -c cm-copy-data -l compose -d 'The Docker Compose v2 program that reads the compose file (words allowed: "docker compose"); default: the `docker compose` plugin, else docker-compose, else docker-compose-v2, the first whose `version` says v2' -r
complete -c cm-copy-data -l only -d 'Copy only these volumes of the default plan (comma-separated: dkim, acme, mail)' -r
complete -c cm-copy-data -l map -d 'Copy SRC to DST instead of the default plan (repeatable). SRC is taken as given; a relative DST is relative to --project-dir' -r
complete -c cm-copy-data -l owner-map -d 'Map owners: lines `name uid gid` (the name\'s ids on the old host are read from --root\'s etc/passwd and etc/group) or `host-uid:host-gid=uid:gid`; `#` comments. ACL entries are mapped too. Without it numeric ids are kept' -r -F
complete -c cm-copy-data -l undo-reown -d 'Put back every owner and mode an undo record of --reown-in-place holds, and exit' -r -F
complete -c cm-copy-data -s j -l jobs -d 'Parallel workers (1 to 1024; default: 4 per CPU, at least 8, at most 32: a copy waits on the disk far more than on the CPU, so more reads in flight go faster)' -r
complete -c cm-copy-data -l checksum -d 'Decide what changed by comparing contents (SHA-256 of both sides), not only type, size, mtime, mode, owner, xattrs and ACLs'
complete -c cm-copy-data -l live -d 'Copy the mail store although chatmail services are running (the bulk copy of a two-phase migration; run again after stopping them). Files that keep changing while they are read are then warnings (left for the next run), not errors'
complete -c cm-copy-data -l adopt -d 'A first copy into a target that already holds entries (no manifest of an earlier run): take them as a partial copy instead of refusing. What the source lacks is moved aside into a dated folder beside the target, never deleted'
complete -c cm-copy-data -l reown-in-place -d 'For a tree the target mounts from the old host\'s own path (nothing to copy), set the owners the target expects (the image\'s by name, or --owner-map) on the old host\'s files themselves; an undo record is written first, to <project-dir>/.cm-reown/<name>-<UTC>.undo'
complete -c cm-copy-data -s n -l dry-run -d 'Print the plan (counts and sizes per volume, space needed, every path that would be removed or moved aside) and change nothing'
complete -c cm-copy-data -s q -l quiet -d 'Print nothing but errors'
complete -c cm-copy-data -s v -l verbose -d 'List every entry copied, linked and removed (with --dry-run: that would be)'
complete -c cm-copy-data -l json -d 'Print a JSON summary on stdout instead of text'
complete -c cm-copy-data -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-copy-data -s V -l version -d 'Print version'
