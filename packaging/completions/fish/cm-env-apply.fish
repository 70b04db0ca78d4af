# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cm_env_apply_global_optspecs
    string join \n h/help V/version
end

function __fish_cm_env_apply_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cm_env_apply_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cm_env_apply_using_subcommand
    set -l cmd (__fish_cm_env_apply_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cm-env-apply -n "__fish_cm_env_apply_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-env-apply -n "__fish_cm_env_apply_needs_command" -s V -l version -d 'Print version'
complete -c cm-env-apply -n "__fish_cm_env_apply_needs_command" -f -a "apply" -d 'Write the chatmail settings of the environment into chatmail.ini'
complete -c cm-env-apply -n "__fish_cm_env_apply_needs_command" -f -a "boot" -d 'Save the whole environment (0600, NUL-separated) and exec PROGRAM: the image\'s ENTRYPOINT, so that the start-up unit sees every variable of .env'
complete -c cm-env-apply -n "__fish_cm_env_apply_using_subcommand apply" -l ini -d 'chatmail.ini to update' -r -F
complete -c cm-env-apply -n "__fish_cm_env_apply_using_subcommand apply" -l environ-file -d 'Read the variables from this NUL-separated KEY=value file instead of the environment (written by `cm-env-apply boot`)' -r -F
complete -c cm-env-apply -n "__fish_cm_env_apply_using_subcommand apply" -l create -d 'Create the ini (`[params]` only, then the settings) when it does not exist'
complete -c cm-env-apply -n "__fish_cm_env_apply_using_subcommand apply" -l accept-invalid -d 'Write values chatmail would refuse (each is reported as a warning instead)'
complete -c cm-env-apply -n "__fish_cm_env_apply_using_subcommand apply" -l check -d 'Only compare: exit 1 when chatmail.ini differs from the environment; write nothing'
complete -c cm-env-apply -n "__fish_cm_env_apply_using_subcommand apply" -s n -l dry-run -d 'Show what would be done and change nothing'
complete -c cm-env-apply -n "__fish_cm_env_apply_using_subcommand apply" -l json -d 'Print one JSON document on stdout instead of the text (also on errors: {"ok": false, "exit_code": N, "error": "..."})'
complete -c cm-env-apply -n "__fish_cm_env_apply_using_subcommand apply" -s q -l quiet -d 'No progress, warnings or text report: the exit status says it all (errors are still printed on stderr; --json still prints)'
complete -c cm-env-apply -n "__fish_cm_env_apply_using_subcommand apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cm-env-apply -n "__fish_cm_env_apply_using_subcommand boot" -l save -d 'Where to save the environment' -r -F
complete -c cm-env-apply -n "__fish_cm_env_apply_using_subcommand boot" -s h -l help -d 'Print help (see more with \'--help\')'
