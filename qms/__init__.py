"""The quality system: users and roles, the Part 11 core (audit trail, e-signatures), QMS records."""
