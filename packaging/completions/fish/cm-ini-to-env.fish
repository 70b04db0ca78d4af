complete -c cm-ini-to-env -l project-dir -d 'The compose project the settings go to, written the way its compose file takes them: an `env_file` .env gets the converted settings (as ENV would); a mounted /etc/chatmail/chatmail.ini gets the ini itself (atomically, its mode kept, an old one kept as a backup) and the project\'s .env the variables the compose file interpolates (MAIL_DOMAIN, ACME_EMAIL). Settings whose default changed between the old host\'s release and the image\'s are reported' -r -F
complete -c cm-ini-to-env -l compose -d 'With --project-dir: the Docker Compose v2 program that reads the compose file (words allowed: "docker compose"; default: the plugin, else docker-compose, else docker-compose-v2)' -r
complete -c cm-ini-to-env -l layout -d 'With --project-dir: the guide\'s layout (settings in its .env), no compose file read' -r -f -a "guide\t''"
complete -c cm-ini-to-env -l check -d 'Compare an existing .env with the ini instead of writing: lists every setting on which chatmail would behave differently, exits 1 if there is any, 0 if none' -r -F
complete -c cm-ini-to-env -l all -d 'Write every setting present in the ini, not only those that differ from defaults'
complete -c cm-ini-to-env -l force -d 'Replace an existing ENV. The old file is kept beside it as ENV.bak-<UTC time> (mode 0600)'
complete -c cm-ini-to-env -l merge -d 'Update an existing ENV: set the chatmail settings from the ini in place, drop chatmail settings the ini leaves at their defaults, and keep every other line and comment (Docker-only variables, notes). A backup is kept as with --force; a merge that changes nothing writes nothing'
complete -c cm-ini-to-env -l accept-invalid -d 'Write values chatmail would refuse (each is reported as a warning instead of an error)'
complete -c cm-ini-to-env -s n -l dry-run -d 'Show what would be done and change nothing'
complete -c cm-ini-to-env -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-ini-to-env -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-ini-to-env -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-ini-to-env -s V -l version -d 'Print version'
