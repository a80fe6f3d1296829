1-
!ns[default]-policy[audit]-rule[0]
tcp.