// An independent check of medsign's CMS SignedData with Bouncy Castle (Debian's bcprov/bcpkix).
//
// Usage: java -cp bcprov.jar:bcpkix.jar:bcutil.jar:. VerifySM2CMS [--stock] <signature.p7s> <content>
// Prints "OK <signer subject>" and exits 0 when every SignerInfo verifies over the detached
// content with the certificate the SignedData carries; prints "FAIL <reason>" and exits 1
// otherwise. For SM2 Bouncy Castle's SM3withSM2 uses the default ID 1234567812345678, which
// is what GB/T 35275 and medsign use. Trust in the certificate is deliberately not judged
// here: the test compares signatures, not chains.
//
// Bouncy Castle 1.72 names SignerInfo algorithms through DefaultCMSSignatureAlgorithmNameGenerator,
// which knows SM2-with-SM3 (1.2.156.10197.1.501) but not SM2-1 (1.2.156.10197.1.301.1), the
// digestEncryptionAlgorithm GB/T 35275-2017 prescribes. Without --stock the generator is taught
// that one name (SM2-1 with SM3 is "SM3WITHSM2"); the signature check itself stays Bouncy
// Castle's own. --stock shows what an unmodified Bouncy Castle does.

import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.Security;
import java.util.Collection;

import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cms.CMSProcessableByteArray;
import org.bouncycastle.cms.CMSSignedData;
import org.bouncycastle.cms.DefaultCMSSignatureAlgorithmNameGenerator;
import org.bouncycastle.cms.SignerInformation;
import org.bouncycastle.cms.SignerInformationVerifier;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.DefaultSignatureAlgorithmIdentifierFinder;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.bouncycastle.util.Store;

public final class VerifySM2CMS {
    private VerifySM2CMS() {}

    /** The stock generator plus the GB/T 35275 SM2-1 signer algorithm. */
    static final class GMNames extends DefaultCMSSignatureAlgorithmNameGenerator {
        GMNames() {
            setSigningEncryptionAlgorithmMapping(
                    new ASN1ObjectIdentifier("1.2.156.10197.1.301.1"), "SM2");
        }
    }

    static SignerInformationVerifier verifier(X509CertificateHolder holder, boolean stock)
            throws Exception {
        if (stock) {
            return new JcaSimpleSignerInfoVerifierBuilder().setProvider("BC").build(holder);
        }
        return new SignerInformationVerifier(
                new GMNames(),
                new DefaultSignatureAlgorithmIdentifierFinder(),
                new JcaContentVerifierProviderBuilder().setProvider("BC").build(holder),
                new JcaDigestCalculatorProviderBuilder().setProvider("BC").build());
    }

    public static void main(String[] args) {
        boolean stock = args.length == 3 && args[0].equals("--stock");
        int first = stock ? 1 : 0;
        if (args.length - first != 2) {
            System.out.println("FAIL usage: VerifySM2CMS [--stock] <signature.p7s> <content>");
            System.exit(2);
        }
        try {
            Security.addProvider(new BouncyCastleProvider());
            byte[] signature = Files.readAllBytes(Paths.get(args[first]));
            byte[] content = Files.readAllBytes(Paths.get(args[first + 1]));
            CMSSignedData signed = new CMSSignedData(new CMSProcessableByteArray(content), signature);
            Store<X509CertificateHolder> certificates = signed.getCertificates();
            Collection<SignerInformation> signers = signed.getSignerInfos().getSigners();
            if (signers.isEmpty()) {
                System.out.println("FAIL no SignerInfo");
                System.exit(1);
            }
            String subject = "";
            for (SignerInformation signer : signers) {
                @SuppressWarnings("unchecked")
                Collection<X509CertificateHolder> matches = certificates.getMatches(signer.getSID());
                if (matches.isEmpty()) {
                    System.out.println("FAIL signer certificate not found");
                    System.exit(1);
                }
                X509CertificateHolder holder = matches.iterator().next();
                boolean ok = signer.verify(verifier(holder, stock));
                if (!ok) {
                    System.out.println("FAIL signature does not verify");
                    System.exit(1);
                }
                subject = holder.getSubject().toString();
            }
            System.out.println("OK " + subject);
        } catch (Exception e) {
            System.out.println("FAIL " + e.getClass().getSimpleName() + ": " + e.getMessage());
            System.exit(1);
        }
    }
}
