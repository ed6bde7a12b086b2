namespace Billing.Dunning;

/// <summary>What happens to the subscription when dunning is exhausted.</summary>
public enum DunningFinalAction
{
    /// <summary>Cancel the subscription; the stretch up to the cancellation (its usage and pending lines) is billed on a final invoice, as canceling by hand bills it.</summary>
    Cancel = 0,

    /// <summary>Keep the subscription as <c>unpaid</c>: it stays, but is not charged until paid manually.</summary>
    MarkUnpaid = 1,
}
