
outbound
aaa:80


/
a
b*.b.svc


/
a