
qm
 ns[default]-policy[deny]-rule[0]I
C
A
-B+")'%spiffe://cluster.local/ns/default/sa/
R
10.0.0.0tcp.