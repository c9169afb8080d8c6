"""The shop's people: accounts, sessions and the login lock (`auth`), the inbox they answer
customers from (`inbox.StaffInbox`), and the notice they get when a conversation needs a
person (`notify.StaffNotifier`). The web layer (app/web) and the CLI import these modules;
nothing below the staff package does.
"""
