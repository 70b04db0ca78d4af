#!/bin/sh
# Test stand-in for chatmail's cmdeploy (the real one needs the internet to install): records
# how cm-start.sh calls it, and for `init` writes a chatmail 1.11+-style template (defaults
# commented out), as `cmdeploy init` does.
echo "cmdeploy $* CMDEPLOY_STAGES=${CMDEPLOY_STAGES:-} CHATMAIL_INI=${CHATMAIL_INI:-}" >>/tmp/cmdeploy.log
if [ "$1" = init ]; then
  config=$3
  domain=$5
  cat >"$config" <<EOT
[params]

# the domain of this relay
mail_domain = $domain

# how many mails a user can send out per minute
# max_user_send_per_minute = 60

# maximum mailbox size of a chatmail address
# max_mailbox_size = 500M

# days after which mails are unconditionally deleted
# delete_mails_after = 20

# deactivate IPv6
# disable_ipv6 = false

# address of the mailbox that receives privacy requests
# privacy_mail =
EOT
fi
