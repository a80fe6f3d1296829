
¯Ô
!ns[default]-policy[allow]-rule[0]®
G
E
"

:authorityjweb.0
)'
R	
/api/
R
*^/items/[^/]+/x$c
a
3"1/
-spiffe://cluster.local/ns/default/sa/frontend
*"(&*$"spiffe://[^/]+/ns/default/sa/[^/]+Õ
!ns[default]-policy[allow]-rule[1]¯
¨
¥
HjF
D
istio_authn
request.auth.principalhttps://issuer.example/
EjC
A
istio_authn
request.auth.claims
org
team

payments
BR
10.9.0.0