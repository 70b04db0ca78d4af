# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cm_verify_global_optspecs
    string join \n h/help V/version
end

function __fish_cm_verify_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cm_verify_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cm_verify_using_subcommand
    set -l cmd (__fish_cm_verify_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cm-verify -n "__fish_cm_verify_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-verify -n "__fish_cm_verify_needs_command" -s V -l version -d 'Print version'
complete -c cm-verify -n "__fish_cm_verify_needs_command" -f -a "tree" -d 'Compare two trees entry by entry: presence, type, mode, owner, size, mtime, content, symlink target, hard-link grouping, extended attributes and ACLs, device numbers'
complete -c cm-verify -n "__fish_cm_verify_needs_command" -f -a "manifest" -d 'Write or check a manifest (a per-tree record, see docs/manifest.md), for when the original and the copy are on different machines'
complete -c cm-verify -n "__fish_cm_verify_needs_command" -f -a "env" -d 'The .env carries exactly the ini\'s settings, compared as chatmail interprets them (an absent key means its default; `True` and `true` are the same boolean; ...)'
complete -c cm-verify -n "__fish_cm_verify_needs_command" -f -a "services" -d 'No chatmail unit (service, timer, path, socket) is active or enabled on this host, no legacy chatmail cron job is installed, and the ports the container needs are free (naming the process and unit holding each)'
complete -c cm-verify -n "__fish_cm_verify_needs_command" -f -a "layout" -d 'The compose project is ready: the folders it mounts exist, the DKIM private key is there and private (and owned by the image\'s opendkim), every ACME live/<domain> link resolves inside the copied tree, the mailbox folder of mail_domain exists (owned by the image\'s vmail)'
complete -c cm-verify -n "__fish_cm_verify_needs_command" -f -a "all" -d 'Everything that applies, one verdict: env, layout, services, and each volume against its reference (printed): with --root its source under that root; without, what the copy recorded in its manifest (the source tree when the manifest was written on this machine and the tree is there, else the manifest)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand tree" -l owner-map -d 'Map owners: lines `name uid gid` (the name\'s ids on the old host are read from --root\'s etc/passwd and etc/group) or `host-uid:host-gid=uid:gid`; `#` comments. ACL entries are mapped too. Without it numeric ids are kept' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand tree" -l root -d 'Root of the old host\'s file system (default /): where the names in --owner-map are resolved (its etc/passwd, etc/group), and for `all` where the volumes\' sources are (home, etc/dkimkeys, var/lib/acme). It must exist' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand tree" -l exclude -d 'Leave out this relative path (and everything below it) on both sides. Repeatable' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand tree" -s j -l jobs -d 'Threads for walking and reading (1 to 1024; default: 4 per CPU, between 8 and 32: the work waits on the disk far more than on the CPU)' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand tree" -l examples -d 'How many examples to show per kind of difference in the text report' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand tree" -l atime -d 'Also compare access times (off by default: reading a file may update them)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand tree" -l no-content -d 'Do not compare contents (metadata only)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand tree" -l no-xattrs -d 'Do not compare extended attributes and ACLs'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand tree" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand tree" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand tree" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and not __fish_seen_subcommand_from write check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and not __fish_seen_subcommand_from write check" -f -a "write" -d 'Record ROOT (every entry\'s metadata and the SHA-256 of every file) in FILE'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and not __fish_seen_subcommand_from write check" -f -a "check" -d 'Compare the live tree DST with the manifest FILE (written by `manifest write` or by cm-copy-data)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from write" -s o -l output -d 'Where to write the manifest' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from write" -s j -l jobs -d 'Threads for walking and reading (1 to 1024; default: 4 per CPU, between 8 and 32: the work waits on the disk far more than on the CPU)' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from write" -l no-hash -d 'Do not hash file contents (the manifest then proves metadata only)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from write" -l no-xattrs -d 'Do not record extended attributes and ACLs'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from write" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from write" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from write" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from check" -l owner-map -d 'Map owners: lines `name uid gid` (the name\'s ids on the old host are read from --root\'s etc/passwd and etc/group) or `host-uid:host-gid=uid:gid`; `#` comments. ACL entries are mapped too. Without it numeric ids are kept' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from check" -l root -d 'Root of the old host\'s file system (default /): where the names in --owner-map are resolved (its etc/passwd, etc/group), and for `all` where the volumes\' sources are (home, etc/dkimkeys, var/lib/acme). It must exist' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from check" -l exclude -d 'Leave out this relative path (and everything below it) on both sides. Repeatable' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from check" -s j -l jobs -d 'Threads for walking and reading (1 to 1024; default: 4 per CPU, between 8 and 32: the work waits on the disk far more than on the CPU)' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from check" -l examples -d 'How many examples to show per kind of difference in the text report' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from check" -l atime -d 'Also compare access times (off by default: reading a file may update them)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from check" -l no-content -d 'Do not compare contents (metadata only)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from check" -l no-xattrs -d 'Do not compare extended attributes and ACLs'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from check" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from check" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand manifest; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand env" -l examples -d 'How many examples to show per kind of difference in the text report' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand env" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand env" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand env" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand services" -l cron-dir -d 'Where legacy chatmail cron jobs would be' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand services" -l proc-root -d 'The proc file system to read sockets from' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand services" -l ports -d 'Ports to require free (comma-separated; default: every port the container needs)' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand services" -l examples -d 'How many examples to show per kind of difference in the text report' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand services" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand services" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand services" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand layout" -l project-dir -d 'The compose project directory (it must exist)' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand layout" -l mail-domain -d 'chatmail\'s mail_domain (default: MAIL_DOMAIN from the project\'s .env, or --ini)' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand layout" -l image-root -d 'A directory holding the image\'s etc/passwd and etc/group (e.g. from `docker cp`), to check owners against the image\'s vmail and opendkim' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand layout" -l image-users -d 'The image\'s fixed users as docker/users lists them (`name uid gid`, `#fixed name uid gid`), to check owners against the image\'s vmail and opendkim without the image' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand layout" -l compose -d 'The Docker Compose v2 program that reads the compose file (words allowed: "docker compose"); default: the `docker compose` plugin, else docker-compose, else docker-compose-v2, the first whose `version` says v2' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand layout" -l layout -d 'Check the guide\'s layout (data/chatmail* below --project-dir) without reading a compose file' -r -f -a "guide\t''"
complete -c cm-verify -n "__fish_cm_verify_using_subcommand layout" -l examples -d 'How many examples to show per kind of difference in the text report' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand layout" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand layout" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand layout" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l ini -d 'chatmail.ini of the old host, for the env check (and mail_domain)' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l project-dir -d 'The compose project directory (it must exist)' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l mail-domain -d 'chatmail\'s mail_domain (default: MAIL_DOMAIN from the project\'s .env, or --ini)' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l image-root -d 'A directory holding the image\'s etc/passwd and etc/group (e.g. from `docker cp`), to check owners against the image\'s vmail and opendkim' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l image-users -d 'The image\'s fixed users as docker/users lists them (`name uid gid`, `#fixed name uid gid`), to check owners against the image\'s vmail and opendkim without the image' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l compose -d 'The Docker Compose v2 program that reads the compose file (words allowed: "docker compose"); default: the `docker compose` plugin, else docker-compose, else docker-compose-v2, the first whose `version` says v2' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l layout -d 'Check the guide\'s layout (data/chatmail* below --project-dir) without reading a compose file' -r -f -a "guide\t''"
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l cron-dir -d 'Where legacy chatmail cron jobs would be' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l proc-root -d 'The proc file system to read sockets from' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l ports -d 'Ports to require free (comma-separated; default: every port the container needs)' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l owner-map -d 'Map owners: lines `name uid gid` (the name\'s ids on the old host are read from --root\'s etc/passwd and etc/group) or `host-uid:host-gid=uid:gid`; `#` comments. ACL entries are mapped too. Without it numeric ids are kept' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l root -d 'Root of the old host\'s file system (default /): where the names in --owner-map are resolved (its etc/passwd, etc/group), and for `all` where the volumes\' sources are (home, etc/dkimkeys, var/lib/acme). It must exist' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l exclude -d 'Leave out this relative path (and everything below it) on both sides. Repeatable' -r -F
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -s j -l jobs -d 'Threads for walking and reading (1 to 1024; default: 4 per CPU, between 8 and 32: the work waits on the disk far more than on the CPU)' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l examples -d 'How many examples to show per kind of difference in the text report' -r
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l no-env -d 'Switch off the env check (the verdict still names it)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l no-services -d 'Switch off the services check (e.g. when run on the new host; the verdict still names it)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l no-trees -d 'Switch off the volume checks (e.g. when the trees are compared otherwise, as `cm-migrate run --verify changed` does; the verdict still names them)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l atime -d 'Also compare access times (off by default: reading a file may update them)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l no-content -d 'Do not compare contents (metadata only)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l no-xattrs -d 'Do not compare extended attributes and ACLs'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-verify -n "__fish_cm_verify_using_subcommand all" -s h -l help -d 'Print help (see more with \'--help\')'
