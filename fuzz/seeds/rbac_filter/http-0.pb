C?
!ns[default]-policy[audit]-rule[0]
B"
:methodj
GET