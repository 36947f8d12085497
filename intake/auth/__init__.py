"""Who may do what: patient links, staff accounts and sign-in, SMART Backend Services clients."""
