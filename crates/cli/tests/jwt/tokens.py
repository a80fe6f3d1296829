"""Mints the JWT tests' keys and tokens with PyJWT (a maintained signer,
not the proxy's own code). Usage: tokens.py OUT_DIR

Writes OUT_DIR/jwks.json (the issuer's public keys: RSA `rsa-1`, EC P-256
`ec-1`), OUT_DIR/inline-jwks.json (a second issuer's key, for an inline
`jwks`) and OUT_DIR/tokens.json (case name -> token)."""
import json, sys, time
import jwt
from jwt.algorithms import RSAAlgorithm, ECAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa, ec

out = sys.argv[1]
ISSUER, INLINE = "https://issuer.example", "https://inline.example"
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
inline_key = ec.generate_private_key(ec.SECP256R1())
forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public(alg, key, kid):
    j = json.loads(alg.to_jwk(key.public_key()))
    j["kid"] = kid
    return j


with open(f"{out}/jwks.json", "w") as f:
    json.dump({"keys": [public(RSAAlgorithm, rsa_key, "rsa-1"), public(ECAlgorithm, ec_key, "ec-1")]}, f)
with open(f"{out}/inline-jwks.json", "w") as f:
    json.dump({"keys": [public(ECAlgorithm, inline_key, "inline-1")]}, f)

now = int(time.time())


def token(sub, key=rsa_key, alg="RS256", kid="rsa-1", **claims):
    body = {"iss": ISSUER, "sub": sub, "aud": "web", "iat": now, "exp": now + 3600}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


tokens = {
    "alice": token("alice", groups=["admin", "ops"], org={"team": "payments"}),
    "bob": token("bob", key=ec_key, alg="ES256", kid="ec-1", groups=["dev"]),
    "carol": token("carol", alg="PS256", aud=["other", "web"]),
    "expired": token("alice", exp=now - 3600),
    "not_yet": token("alice", nbf=now + 3600),
    "wrong_issuer": token("alice", iss="https://evil.example"),
    "wrong_audience": token("alice", aud="billing"),
    "forged": token("alice", key=forger),
    "inline": token("dave", key=inline_key, alg="ES256", kid="inline-1", iss=INLINE, aud=None),
}
with open(f"{out}/tokens.json", "w") as f:
    json.dump(tokens, f)
