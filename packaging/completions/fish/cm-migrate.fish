# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cm_migrate_global_optspecs
    string join \n h/help V/version
end

function __fish_cm_migrate_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cm_migrate_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cm_migrate_using_subcommand
    set -l cmd (__fish_cm_migrate_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cm-migrate -n "__fish_cm_migrate_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_needs_command" -s V -l version -d 'Print version'
complete -c cm-migrate -n "__fish_cm_migrate_needs_command" -f -a "preflight" -d 'Check everything the move needs (root, systemd, Docker and Compose v2, cgroup v2, the inotify limits, space, ports, the ini, the mail queue, the target); change nothing. Exit 1 when a finding blocks the move'
complete -c cm-migrate -n "__fish_cm_migrate_needs_command" -f -a "run" -d 'The whole move: preflight, a live bulk copy while the relay serves mail (with a change journal), stop-services, the delta of what changed, the .env, cm-verify all [, the container started]; prints the measured downtime. --resume continues a crashed run'
complete -c cm-migrate -n "__fish_cm_migrate_needs_command" -f -a "rollback" -d 'Bring the old relay back after a run: a container it started is stopped first, then every unit restored as recorded; what the run left in the target is listed'
complete -c cm-migrate -n "__fish_cm_migrate_needs_command" -f -a "stop-services" -d 'Stop and disable every chatmail unit on this host, in a safe order'
complete -c cm-migrate -n "__fish_cm_migrate_needs_command" -f -a "start-services" -d 'Undo stop-services: re-enable and start exactly what ran before'
complete -c cm-migrate -n "__fish_cm_migrate_needs_command" -f -a "ini-to-env" -d 'Convert a bare-metal chatmail.ini into the .env file of chatmail\'s Docker deployment'
complete -c cm-migrate -n "__fish_cm_migrate_needs_command" -f -a "copy-data" -d 'Copy a chatmail relay\'s state (DKIM keys, ACME state, mail store) into a Docker project.'
complete -c cm-migrate -n "__fish_cm_migrate_needs_command" -f -a "verify" -d 'Prove that a migration is complete and exact, and say exactly what is not'
complete -c cm-migrate -n "__fish_cm_migrate_needs_command" -f -a "env-apply" -d 'Start-up applier of the chatmail Docker image: puts every chatmail setting found in the environment into chatmail.ini.'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l project-dir -d 'The compose project directory on this host (the Docker host is this machine). Where each piece of the relay\'s state goes is read from its compose file through Compose v2 (bind mounts, named volumes, a mounted chatmail.ini), as cm-copy-data reads it' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l to -d 'The Docker host is another machine: ssh://[USER@]HOST[:PORT]/DIR, DIR being the compose project directory there, read by Compose v2 there. The data goes with rsync over ssh (-aHAX --numeric-ids, owners mapped) and is checked there with cm-verify and manifests' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l root -d 'The old host\'s root directory (the sources are its etc/dkimkeys, var/lib/acme, home). Anything but / means the services are not this machine\'s: the stop is skipped' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l ini -d 'The relay\'s chatmail.ini [default: ROOT/usr/local/lib/chatmaild/chatmail.ini]' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l owner-map -d 'Map owners while copying, as cm-copy-data --owner-map' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l state-dir -d 'Where the run journal, the services state and the manifests for --to live' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l skip-check -d 'Pass over a blocking finding of this check (repeatable; it is then shown as "not checked"): root, systemd, docker, compose, cgroup, inotify, space, sources, ports, ini, queue, target, transport' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l ssh-option -d 'An ssh option for --to (as `ssh -o OPTION`; repeatable)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l ssh-identity -d 'The ssh key for --to (as `ssh -i FILE`)' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l ssh-config -d 'An ssh client configuration for --to (as `ssh -F FILE`)' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l compose -d 'The Compose v2 program (words allowed: "docker compose") [default: the `docker compose` plugin, else docker-compose, else docker-compose-v2, the first that is v2]' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l layout -d 'Move into the guide\'s layout (data/chatmail, data/chatmail-dkimkeys, data/chatmail-acme and .env below --project-dir, or below the --to directory) without reading a compose file' -r -f -a "guide\t''"
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l queue-timeout -d 'Seconds to wait for the postfix queue to empty before stopping postfix' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l unit-timeout -d 'Seconds one stage of units may take to stop or start' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l verify -d 'How the copy is proven before the downtime ends: `full` runs cm-verify all (reads every file of source and copy); `changed` compares by content only the directories the change journal names (the bulk copy read every other copy back), plus cm-verify\'s env, layout and services checks, and falls back to `full` for whatever the journal could not follow. With --to the far side always checks the manifests in full' -r -f -a "full\t''
changed\t''"
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l health-timeout -d 'Seconds --start waits for the container to serve' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l start -d 'Check as for `run --start` (the container starts here: Docker, cgroup v2 and the inotify limits then block instead of warn)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l json -d 'One JSON document on stdout (also for errors: {"error": ..., "exit_code": N})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -l quiet -d 'Nothing on stdout but --json; problems still on stderr'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand preflight" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l project-dir -d 'The compose project directory on this host (the Docker host is this machine). Where each piece of the relay\'s state goes is read from its compose file through Compose v2 (bind mounts, named volumes, a mounted chatmail.ini), as cm-copy-data reads it' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l to -d 'The Docker host is another machine: ssh://[USER@]HOST[:PORT]/DIR, DIR being the compose project directory there, read by Compose v2 there. The data goes with rsync over ssh (-aHAX --numeric-ids, owners mapped) and is checked there with cm-verify and manifests' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l root -d 'The old host\'s root directory (the sources are its etc/dkimkeys, var/lib/acme, home). Anything but / means the services are not this machine\'s: the stop is skipped' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l ini -d 'The relay\'s chatmail.ini [default: ROOT/usr/local/lib/chatmaild/chatmail.ini]' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l owner-map -d 'Map owners while copying, as cm-copy-data --owner-map' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l state-dir -d 'Where the run journal, the services state and the manifests for --to live' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l skip-check -d 'Pass over a blocking finding of this check (repeatable; it is then shown as "not checked"): root, systemd, docker, compose, cgroup, inotify, space, sources, ports, ini, queue, target, transport' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l ssh-option -d 'An ssh option for --to (as `ssh -o OPTION`; repeatable)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l ssh-identity -d 'The ssh key for --to (as `ssh -i FILE`)' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l ssh-config -d 'An ssh client configuration for --to (as `ssh -F FILE`)' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l compose -d 'The Compose v2 program (words allowed: "docker compose") [default: the `docker compose` plugin, else docker-compose, else docker-compose-v2, the first that is v2]' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l layout -d 'Move into the guide\'s layout (data/chatmail, data/chatmail-dkimkeys, data/chatmail-acme and .env below --project-dir, or below the --to directory) without reading a compose file' -r -f -a "guide\t''"
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l queue-timeout -d 'Seconds to wait for the postfix queue to empty before stopping postfix' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l unit-timeout -d 'Seconds one stage of units may take to stop or start' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l verify -d 'How the copy is proven before the downtime ends: `full` runs cm-verify all (reads every file of source and copy); `changed` compares by content only the directories the change journal names (the bulk copy read every other copy back), plus cm-verify\'s env, layout and services checks, and falls back to `full` for whatever the journal could not follow. With --to the far side always checks the manifests in full' -r -f -a "full\t''
changed\t''"
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l health-timeout -d 'Seconds --start waits for the container to serve' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l resume -d 'Continue an interrupted run where it stopped (steps that must not repeat are not)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l start -d 'Also bring the container up (docker compose up -d) and wait until it serves; the downtime then ends when it does'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l dry-run -d 'Print the plan (findings, sizes, the steps, the expected downtime from a timed sample of the store); change nothing'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l json -d 'One JSON document on stdout (also for errors: {"error": ..., "exit_code": N})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -l quiet -d 'Nothing on stdout but --json; problems still on stderr'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l project-dir -d 'The compose project directory on this host (the Docker host is this machine). Where each piece of the relay\'s state goes is read from its compose file through Compose v2 (bind mounts, named volumes, a mounted chatmail.ini), as cm-copy-data reads it' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l to -d 'The Docker host is another machine: ssh://[USER@]HOST[:PORT]/DIR, DIR being the compose project directory there, read by Compose v2 there. The data goes with rsync over ssh (-aHAX --numeric-ids, owners mapped) and is checked there with cm-verify and manifests' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l root -d 'The old host\'s root directory (the sources are its etc/dkimkeys, var/lib/acme, home). Anything but / means the services are not this machine\'s: the stop is skipped' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l ini -d 'The relay\'s chatmail.ini [default: ROOT/usr/local/lib/chatmaild/chatmail.ini]' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l owner-map -d 'Map owners while copying, as cm-copy-data --owner-map' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l state-dir -d 'Where the run journal, the services state and the manifests for --to live' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l skip-check -d 'Pass over a blocking finding of this check (repeatable; it is then shown as "not checked"): root, systemd, docker, compose, cgroup, inotify, space, sources, ports, ini, queue, target, transport' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l ssh-option -d 'An ssh option for --to (as `ssh -o OPTION`; repeatable)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l ssh-identity -d 'The ssh key for --to (as `ssh -i FILE`)' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l ssh-config -d 'An ssh client configuration for --to (as `ssh -F FILE`)' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l compose -d 'The Compose v2 program (words allowed: "docker compose") [default: the `docker compose` plugin, else docker-compose, else docker-compose-v2, the first that is v2]' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l layout -d 'Move into the guide\'s layout (data/chatmail, data/chatmail-dkimkeys, data/chatmail-acme and .env below --project-dir, or below the --to directory) without reading a compose file' -r -f -a "guide\t''"
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l queue-timeout -d 'Seconds to wait for the postfix queue to empty before stopping postfix' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l unit-timeout -d 'Seconds one stage of units may take to stop or start' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l verify -d 'How the copy is proven before the downtime ends: `full` runs cm-verify all (reads every file of source and copy); `changed` compares by content only the directories the change journal names (the bulk copy read every other copy back), plus cm-verify\'s env, layout and services checks, and falls back to `full` for whatever the journal could not follow. With --to the far side always checks the manifests in full' -r -f -a "full\t''
changed\t''"
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l health-timeout -d 'Seconds --start waits for the container to serve' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l json -d 'One JSON document on stdout (also for errors: {"error": ..., "exit_code": N})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -l quiet -d 'Nothing on stdout but --json; problems still on stderr'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand rollback" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand stop-services" -l queue-timeout -d 'Seconds to wait for the postfix queue to empty after flushing it; 0 checks once without waiting. Mail still queued then blocks the stop (see --allow-queued-mail)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand stop-services" -l state-file -d 'Where to record the prior state of every unit (read by start-services --restore). Written atomically, mode 0600, its directory created mode 0700. A later run merges into it: the first recorded state of a unit is kept' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand stop-services" -l unit-timeout -d 'Seconds one unit may take to stop. A unit still stopping after that is reported (systemd goes on stopping it), disabled anyway, and the rest go on; exit 1' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand stop-services" -s n -l dry-run -d 'Print the plan and the number of queued messages; change nothing (the queue is not flushed, no state file is written)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand stop-services" -l allow-queued-mail -d 'Stop postfix even if mail is still queued after --queue-timeout. The messages stay in postfix\'s queue directory on this host and are NOT moved into the container; the count and place are printed as a warning'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand stop-services" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand stop-services" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand stop-services" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand start-services" -l state-file -d 'The state file written by stop-services' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand start-services" -l unit-timeout -d 'Seconds one unit may take to start. A unit still starting after that is reported and the rest go on; exit 1' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand start-services" -l restore -d 'Restore the state recorded by stop-services (required: nothing else is supported)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand start-services" -s n -l dry-run -d 'Print what would be enabled and started; change nothing'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand start-services" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand start-services" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand start-services" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -l project-dir -d 'The compose project the settings go to, written the way its compose file takes them: an `env_file` .env gets the converted settings (as ENV would); a mounted /etc/chatmail/chatmail.ini gets the ini itself (atomically, its mode kept, an old one kept as a backup) and the project\'s .env the variables the compose file interpolates (MAIL_DOMAIN, ACME_EMAIL). Settings whose default changed between the old host\'s release and the image\'s are reported' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -l compose -d 'With --project-dir: the Docker Compose v2 program that reads the compose file (words allowed: "docker compose"; default: the plugin, else docker-compose, else docker-compose-v2)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -l layout -d 'With --project-dir: the guide\'s layout (settings in its .env), no compose file read' -r -f -a "guide\t''"
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -l check -d 'Compare an existing .env with the ini instead of writing: lists every setting on which chatmail would behave differently, exits 1 if there is any, 0 if none' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -l all -d 'Write every setting present in the ini, not only those that differ from defaults'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -l force -d 'Replace an existing ENV. The old file is kept beside it as ENV.bak-<UTC time> (mode 0600)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -l merge -d 'Update an existing ENV: set the chatmail settings from the ini in place, drop chatmail settings the ini leaves at their defaults, and keep every other line and comment (Docker-only variables, notes). A backup is kept as with --force; a merge that changes nothing writes nothing'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -l accept-invalid -d 'Write values chatmail would refuse (each is reported as a warning instead of an error)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -s n -l dry-run -d 'Show what would be done and change nothing'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand ini-to-env" -s V -l version -d 'Print version'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l root -d 'The old host\'s root directory: the default plan\'s sources are below it' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l project-dir -d 'The Docker compose project directory: the default plan\'s targets are read from its compose file' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l layout -d 'Copy into the guide\'s layout (data/chatmail, data/chatmail-dkimkeys, data/chatmail-acme below --project-dir) without reading a compose file' -r -f -a "guide\t''"
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l compose -d 'The Docker Compose v2 program that reads the compose file (words allowed: "docker compose"); default: the `docker compose` plugin, else docker-compose, else docker-compose-v2, the first whose `version` says v2' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l only -d 'Copy only these volumes of the default plan (comma-separated: dkim, acme, mail)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l map -d 'Copy SRC to DST instead of the default plan (repeatable). SRC is taken as given; a relative DST is relative to --project-dir' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l owner-map -d 'Map owners: lines `name uid gid` (the name\'s ids on the old host are read from --root\'s etc/passwd and etc/group) or `host-uid:host-gid=uid:gid`; `#` comments. ACL entries are mapped too. Without it numeric ids are kept' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l undo-reown -d 'Put back every owner and mode an undo record of --reown-in-place holds, and exit' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -s j -l jobs -d 'Parallel workers (1 to 1024; default: 4 per CPU, at least 8, at most 32: a copy waits on the disk far more than on the CPU, so more reads in flight go faster)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l checksum -d 'Decide what changed by comparing contents (SHA-256 of both sides), not only type, size, mtime, mode, owner, xattrs and ACLs'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l live -d 'Copy the mail store although chatmail services are running (the bulk copy of a two-phase migration; run again after stopping them). Files that keep changing while they are read are then warnings (left for the next run), not errors'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l adopt -d 'A first copy into a target that already holds entries (no manifest of an earlier run): take them as a partial copy instead of refusing. What the source lacks is moved aside into a dated folder beside the target, never deleted'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l reown-in-place -d 'For a tree the target mounts from the old host\'s own path (nothing to copy), set the owners the target expects (the image\'s by name, or --owner-map) on the old host\'s files themselves; an undo record is written first, to <project-dir>/.cm-reown/<name>-<UTC>.undo'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -s n -l dry-run -d 'Print the plan (counts and sizes per volume, space needed, every path that would be removed or moved aside) and change nothing'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -s q -l quiet -d 'Print nothing but errors'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -s v -l verbose -d 'List every entry copied, linked and removed (with --dry-run: that would be)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -l json -d 'Print a JSON summary on stdout instead of text'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand copy-data" -s V -l version -d 'Print version'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and not __fish_seen_subcommand_from tree manifest env services layout all" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and not __fish_seen_subcommand_from tree manifest env services layout all" -s V -l version -d 'Print version'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and not __fish_seen_subcommand_from tree manifest env services layout all" -f -a "tree" -d 'Compare two trees entry by entry: presence, type, mode, owner, size, mtime, content, symlink target, hard-link grouping, extended attributes and ACLs, device numbers'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and not __fish_seen_subcommand_from tree manifest env services layout all" -f -a "manifest" -d 'Write or check a manifest (a per-tree record, see docs/manifest.md), for when the original and the copy are on different machines'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and not __fish_seen_subcommand_from tree manifest env services layout all" -f -a "env" -d 'The .env carries exactly the ini\'s settings, compared as chatmail interprets them (an absent key means its default; `True` and `true` are the same boolean; ...)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and not __fish_seen_subcommand_from tree manifest env services layout all" -f -a "services" -d 'No chatmail unit (service, timer, path, socket) is active or enabled on this host, no legacy chatmail cron job is installed, and the ports the container needs are free (naming the process and unit holding each)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and not __fish_seen_subcommand_from tree manifest env services layout all" -f -a "layout" -d 'The compose project is ready: the folders it mounts exist, the DKIM private key is there and private (and owned by the image\'s opendkim), every ACME live/<domain> link resolves inside the copied tree, the mailbox folder of mail_domain exists (owned by the image\'s vmail)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and not __fish_seen_subcommand_from tree manifest env services layout all" -f -a "all" -d 'Everything that applies, one verdict: env, layout, services, and each volume against its reference (printed): with --root its source under that root; without, what the copy recorded in its manifest (the source tree when the manifest was written on this machine and the tree is there, else the manifest)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from tree" -l owner-map -d 'Map owners: lines `name uid gid` (the name\'s ids on the old host are read from --root\'s etc/passwd and etc/group) or `host-uid:host-gid=uid:gid`; `#` comments. ACL entries are mapped too. Without it numeric ids are kept' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from tree" -l root -d 'Root of the old host\'s file system (default /): where the names in --owner-map are resolved (its etc/passwd, etc/group), and for `all` where the volumes\' sources are (home, etc/dkimkeys, var/lib/acme). It must exist' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from tree" -l exclude -d 'Leave out this relative path (and everything below it) on both sides. Repeatable' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from tree" -s j -l jobs -d 'Threads for walking and reading (1 to 1024; default: 4 per CPU, between 8 and 32: the work waits on the disk far more than on the CPU)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from tree" -l examples -d 'How many examples to show per kind of difference in the text report' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from tree" -l atime -d 'Also compare access times (off by default: reading a file may update them)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from tree" -l no-content -d 'Do not compare contents (metadata only)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from tree" -l no-xattrs -d 'Do not compare extended attributes and ACLs'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from tree" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from tree" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from tree" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from manifest" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from manifest" -f -a "write" -d 'Record ROOT (every entry\'s metadata and the SHA-256 of every file) in FILE'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from manifest" -f -a "check" -d 'Compare the live tree DST with the manifest FILE (written by `manifest write` or by cm-copy-data)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from env" -l examples -d 'How many examples to show per kind of difference in the text report' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from env" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from env" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from env" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from services" -l cron-dir -d 'Where legacy chatmail cron jobs would be' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from services" -l proc-root -d 'The proc file system to read sockets from' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from services" -l ports -d 'Ports to require free (comma-separated; default: every port the container needs)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from services" -l examples -d 'How many examples to show per kind of difference in the text report' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from services" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from services" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from services" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from layout" -l project-dir -d 'The compose project directory (it must exist)' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from layout" -l mail-domain -d 'chatmail\'s mail_domain (default: MAIL_DOMAIN from the project\'s .env, or --ini)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from layout" -l image-root -d 'A directory holding the image\'s etc/passwd and etc/group (e.g. from `docker cp`), to check owners against the image\'s vmail and opendkim' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from layout" -l image-users -d 'The image\'s fixed users as docker/users lists them (`name uid gid`, `#fixed name uid gid`), to check owners against the image\'s vmail and opendkim without the image' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from layout" -l compose -d 'The Docker Compose v2 program that reads the compose file (words allowed: "docker compose"); default: the `docker compose` plugin, else docker-compose, else docker-compose-v2, the first whose `version` says v2' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from layout" -l layout -d 'Check the guide\'s layout (data/chatmail* below --project-dir) without reading a compose file' -r -f -a "guide\t''"
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from layout" -l examples -d 'How many examples to show per kind of difference in the text report' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from layout" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from layout" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from layout" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l ini -d 'chatmail.ini of the old host, for the env check (and mail_domain)' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l project-dir -d 'The compose project directory (it must exist)' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l mail-domain -d 'chatmail\'s mail_domain (default: MAIL_DOMAIN from the project\'s .env, or --ini)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l image-root -d 'A directory holding the image\'s etc/passwd and etc/group (e.g. from `docker cp`), to check owners against the image\'s vmail and opendkim' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l image-users -d 'The image\'s fixed users as docker/users lists them (`name uid gid`, `#fixed name uid gid`), to check owners against the image\'s vmail and opendkim without the image' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l compose -d 'The Docker Compose v2 program that reads the compose file (words allowed: "docker compose"); default: the `docker compose` plugin, else docker-compose, else docker-compose-v2, the first whose `version` says v2' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l layout -d 'Check the guide\'s layout (data/chatmail* below --project-dir) without reading a compose file' -r -f -a "guide\t''"
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l cron-dir -d 'Where legacy chatmail cron jobs would be' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l proc-root -d 'The proc file system to read sockets from' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l ports -d 'Ports to require free (comma-separated; default: every port the container needs)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l owner-map -d 'Map owners: lines `name uid gid` (the name\'s ids on the old host are read from --root\'s etc/passwd and etc/group) or `host-uid:host-gid=uid:gid`; `#` comments. ACL entries are mapped too. Without it numeric ids are kept' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l root -d 'Root of the old host\'s file system (default /): where the names in --owner-map are resolved (its etc/passwd, etc/group), and for `all` where the volumes\' sources are (home, etc/dkimkeys, var/lib/acme). It must exist' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l exclude -d 'Leave out this relative path (and everything below it) on both sides. Repeatable' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -s j -l jobs -d 'Threads for walking and reading (1 to 1024; default: 4 per CPU, between 8 and 32: the work waits on the disk far more than on the CPU)' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l examples -d 'How many examples to show per kind of difference in the text report' -r
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l no-env -d 'Switch off the env check (the verdict still names it)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l no-services -d 'Switch off the services check (e.g. when run on the new host; the verdict still names it)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l no-trees -d 'Switch off the volume checks (e.g. when the trees are compared otherwise, as `cm-migrate run --verify changed` does; the verdict still names them)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l atime -d 'Also compare access times (off by default: reading a file may update them)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l no-content -d 'Do not compare contents (metadata only)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l no-xattrs -d 'Do not compare extended attributes and ACLs'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand verify; and __fish_seen_subcommand_from all" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and not __fish_seen_subcommand_from apply boot" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and not __fish_seen_subcommand_from apply boot" -s V -l version -d 'Print version'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and not __fish_seen_subcommand_from apply boot" -f -a "apply" -d 'Write the chatmail settings of the environment into chatmail.ini'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and not __fish_seen_subcommand_from apply boot" -f -a "boot" -d 'Save the whole environment (0600, NUL-separated) and exec PROGRAM: the image\'s ENTRYPOINT, so that the start-up unit sees every variable of .env'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and __fish_seen_subcommand_from apply" -l ini -d 'chatmail.ini to update' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and __fish_seen_subcommand_from apply" -l environ-file -d 'Read the variables from this NUL-separated KEY=value file instead of the environment (written by `cm-env-apply boot`)' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and __fish_seen_subcommand_from apply" -l create -d 'Create the ini (`[params]` only, then the settings) when it does not exist'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and __fish_seen_subcommand_from apply" -l accept-invalid -d 'Write values chatmail would refuse (each is reported as a warning instead)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and __fish_seen_subcommand_from apply" -l check -d 'Only compare: exit 1 when chatmail.ini differs from the environment; write nothing'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and __fish_seen_subcommand_from apply" -s n -l dry-run -d 'Show what would be done and change nothing'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and __fish_seen_subcommand_from apply" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and __fish_seen_subcommand_from apply" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and __fish_seen_subcommand_from apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and __fish_seen_subcommand_from boot" -l save -d 'Where to save the environment' -r -F
complete -c cm-migrate -n "__fish_cm_migrate_using_subcommand env-apply; and __fish_seen_subcommand_from boot" -s h -l help -d 'Print help (see more with \'--help\')'
